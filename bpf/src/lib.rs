//! The XDP program that steers each port's frames to its AF_XDP sockets, and
//! its loader. Filled in by the AF_XDP issue; the dataplane core needs no
//! kernel.
