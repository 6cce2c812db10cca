//! Which CPUs this process may run on, so shard pinning honours `taskset`.

/// The CPUs of this process's affinity mask, ascending; `[0]` if it cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        let cpus: Vec<usize> =
            (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
        if cpus.is_empty() {
            vec![0]
        } else {
            cpus
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_least_one_cpu() {
        assert!(!super::allowed_cpus().is_empty());
    }
}
