//! CPU lists (`--pmd-cpus 1`, `0,1`, `0-3,6`): parsing, and the CPUs this
//! process may run on.
//!
//! The syntax is the kernel's cpulist format (`Documentation/admin-guide/
//! cputopology.rst`), the one `taskset -c`, `/sys/devices/system/cpu/online`
//! and `/proc/self/status`'s `Cpus_allowed_list` use: comma-separated CPU
//! numbers or inclusive ranges `a-b`. A parsed list keeps the order given
//! (PMD `i` goes to the `i`-th CPU) and refuses duplicates, empty items,
//! reversed ranges and CPUs this process may not run on, each with a
//! one-line message naming the offending item.

use thiserror::Error;

/// Why a CPU list was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CpuListError {
    /// Not the cpulist syntax.
    #[error("bad CPU list {list:?}: {why}")]
    Syntax {
        /// The whole list as given.
        list: String,
        /// What is wrong, naming the item.
        why: String,
    },
    /// A CPU outside the set this process may run on.
    #[error("CPU {cpu} in --{option} {list:?} is not available (usable CPUs: {allowed})")]
    Unavailable {
        /// The option the list came from (`pmd-cpus`, `helper-cpus`).
        option: &'static str,
        /// The CPU.
        cpu: usize,
        /// The whole list as given.
        list: String,
        /// The usable CPUs, in cpulist form.
        allowed: String,
    },
}

/// Most CPUs one list may name (keeps `0-4000000000` from allocating).
const MAX_CPUS: usize = 4096;

/// Parses a cpulist into CPU numbers, in the order given.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, CpuListError> {
    let err = |why: String| CpuListError::Syntax {
        list: list.to_string(),
        why,
    };
    let mut out: Vec<usize> = Vec::new();
    if list.trim().is_empty() {
        return Err(err("it is empty".into()));
    }
    for item in list.trim().split(',') {
        let item = item.trim();
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| err(format!("{s:?} is not a CPU number")))
        };
        let (lo, hi) = match item.split_once('-') {
            _ if item.is_empty() => return Err(err("empty item".into())),
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(err(format!("range {item:?} runs backwards")));
        }
        if hi >= MAX_CPUS || out.len() + (hi - lo) >= MAX_CPUS {
            return Err(err(format!("{item:?} names more than {MAX_CPUS} CPUs")));
        }
        for c in lo..=hi {
            if out.contains(&c) {
                return Err(err(format!("CPU {c} is listed twice")));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// The CPUs this process may run on (its affinity mask, from
/// `/proc/self/status`), ascending; `None` if that cannot be read.
pub fn allowed_cpus() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    let mut v = parse_cpu_list(line.trim()).ok()?;
    v.sort_unstable();
    Some(v)
}

/// The PMD CPUs for `--pmd-cpus`: the list given, each CPU checked against
/// `allowed`; or, without a list, the last allowed CPU (one PMD), so the
/// lower CPUs stay free for the system and traffic generators.
pub fn pmd_cpus(list: Option<&str>, allowed: &[usize]) -> Result<Vec<usize>, CpuListError> {
    let Some(list) = list else {
        return Ok(allowed.last().map(|&c| vec![c]).unwrap_or_default());
    };
    checked_list("pmd-cpus", list, allowed)
}

/// The CPUs for `--helper-cpus`, the threads that do port changes and
/// teardown (the port lane, the reclaimer, housekeeping, the link
/// monitor; see `dataplane::affinity`): the list given, each CPU checked
/// against `allowed`; without a list, the allowed CPUs that have no PMD,
/// or the lowest allowed CPU when PMDs take them all. Empty (not
/// confined) only when `allowed` is unknown.
pub fn helper_cpus(
    list: Option<&str>,
    allowed: &[usize],
    pmds: &[usize],
) -> Result<Vec<usize>, CpuListError> {
    if let Some(list) = list {
        return checked_list("helper-cpus", list, allowed);
    }
    let free: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !pmds.contains(c))
        .collect();
    Ok(if free.is_empty() {
        allowed.first().map(|&c| vec![c]).unwrap_or_default()
    } else {
        free
    })
}

fn checked_list(
    option: &'static str,
    list: &str,
    allowed: &[usize],
) -> Result<Vec<usize>, CpuListError> {
    let cpus = parse_cpu_list(list)?;
    if !allowed.is_empty() {
        if let Some(&bad) = cpus.iter().find(|c| !allowed.contains(c)) {
            return Err(CpuListError::Unavailable {
                option,
                cpu: bad,
                list: list.to_string(),
                allowed: format_cpu_list(allowed),
            });
        }
    }
    Ok(cpus)
}

/// Formats ascending CPUs as a cpulist (`0-3,6`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_lists_and_ranges_parse_in_order() {
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0,1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("3,0-1").unwrap(), vec![3, 0, 1]);
        assert_eq!(parse_cpu_list(" 2 - 4 ").unwrap(), vec![2, 3, 4]);
    }

    #[test]
    fn malformed_lists_name_the_bad_item() {
        for (list, needle) in [
            ("", "empty"),
            ("1,,2", "empty item"),
            ("a", "\"a\" is not a CPU number"),
            ("-1", "\"\" is not a CPU number"),
            ("3-1", "runs backwards"),
            ("1,1", "CPU 1 is listed twice"),
            ("0-1,1", "CPU 1 is listed twice"),
            ("0-99999999", "more than"),
        ] {
            let e = parse_cpu_list(list).unwrap_err().to_string();
            assert!(e.contains(needle), "{list:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn default_is_one_pmd_on_the_last_allowed_cpu() {
        assert_eq!(pmd_cpus(None, &[0, 1, 2]).unwrap(), vec![2]);
        assert_eq!(pmd_cpus(None, &[]).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn a_cpu_outside_the_affinity_mask_is_refused() {
        let e = pmd_cpus(Some("0,5"), &[0, 1]).unwrap_err();
        assert_eq!(
            e,
            CpuListError::Unavailable {
                option: "pmd-cpus",
                cpu: 5,
                list: "0,5".into(),
                allowed: "0-1".into()
            }
        );
        assert!(e.to_string().contains("CPU 5"), "{e}");
        assert_eq!(pmd_cpus(Some("1"), &[0, 1]).unwrap(), vec![1]);
    }

    #[test]
    fn helpers_default_to_the_cpus_without_a_pmd() {
        assert_eq!(helper_cpus(None, &[0, 1], &[1]).unwrap(), vec![0]);
        assert_eq!(
            helper_cpus(None, &[0, 1, 2, 3], &[3, 1]).unwrap(),
            vec![0, 2]
        );
        // Every CPU has a PMD: one CPU, so the others keep clear of
        // port teardown.
        assert_eq!(helper_cpus(None, &[0, 1], &[0, 1]).unwrap(), vec![0]);
        assert_eq!(helper_cpus(None, &[], &[0]).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn a_helper_list_is_checked_and_the_error_names_its_option() {
        assert_eq!(helper_cpus(Some("1"), &[0, 1], &[1]).unwrap(), vec![1]);
        let e = helper_cpus(Some("7"), &[0, 1], &[1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CPU 7 in --helper-cpus \"7\" is not available (usable CPUs: 0-1)"
        );
        assert!(matches!(
            helper_cpus(Some("1-0"), &[0, 1], &[1]),
            Err(CpuListError::Syntax { .. })
        ));
    }

    #[test]
    fn this_process_has_an_affinity_mask_that_round_trips() {
        let cpus = allowed_cpus().expect("Cpus_allowed_list readable");
        assert!(!cpus.is_empty());
        assert_eq!(parse_cpu_list(&format_cpu_list(&cpus)).unwrap(), cpus);
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }
}
