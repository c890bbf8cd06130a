//! OpenFlow flow syntax (in progress).
