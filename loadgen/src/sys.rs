//! Thin wrappers over the Linux calls the workers need: monotonic clock, non-blocking
//! sockets with chosen source addresses, epoll, timerfd, CPU affinity and CPU-time accounting.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `CLOCK_MONOTONIC` in ns (vDSO, ~20 ns).
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (user, system) CPU time of this process, ns.
pub fn process_cpu_ns() -> (u64, u64) {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// CPU time of another process (all its threads, exited ones included), ns: the kernel's
/// process CPU-time clock (`clock_getcpuclockid`), kept in ns, else utime + stime from
/// `/proc/PID/stat`. The ticks of the latter (usually 10 ms) would quantise a light-load
/// server's CPU per delivery: 0.03 cores over a 10 s window is only 30 ticks.
pub fn pid_cpu_ns(pid: u32) -> Option<u64> {
    // The clock id encodes !pid << 3: pid 0 or one above the kernel's PID_MAX_LIMIT (2^22)
    // would alias another clock (this process's own, for a large one).
    if pid == 0 || pid > 1 << 22 {
        return None;
    }
    let mut clk: libc::clockid_t = 0;
    // SAFETY: valid out-pointer; the clock id is only read by clock_gettime below.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clk) } == 0 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid pointer to a timespec.
        if unsafe { libc::clock_gettime(clk, &mut ts) } == 0 {
            return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
        }
    }
    pid_stat_cpu_ns(pid)
}

/// utime+stime of another process from /proc/PID/stat, ns (clock-tick resolution).
pub fn pid_stat_cpu_ns(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the comm: state(0) ... utime(11) stime(12).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf is always safe.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

/// VmRSS of a process in KiB.
pub fn pid_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Raises RLIMIT_NOFILE as far as allowed (past the hard limit when privileged). Returns it.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain rlimit calls on valid structs.
    unsafe {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(rl.rlim_max);
        let want = nr_open.min(1 << 21).max(rl.rlim_max);
        let up = libc::rlimit { rlim_cur: want, rlim_max: want };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &up) != 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur
    }
}

/// Starts a non-blocking TCP connect from `src` (port chosen at connect time, so many
/// destinations can share it); returns the fd (connect usually still in progress).
pub fn connect_nonblocking(dst: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<RawFd> {
    let SocketAddr::V4(dst) = dst else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "only IPv4 targets are supported"));
    };
    // SAFETY: socket/setsockopt/bind/connect with correctly sized, initialised arguments.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let one: libc::c_int = 1;
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const _ as *const _, sz);
        if let Some(ip) = src {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const _ as *const _,
                sz,
            );
            let sa = sockaddr(SocketAddrV4::new(ip, 0));
            if let Err(e) = cvt(libc::bind(fd, &sa as *const _ as *const _, std::mem::size_of_val(&sa) as _))
            {
                libc::close(fd);
                return Err(e);
            }
        }
        let sa = sockaddr(dst);
        let r = libc::connect(fd, &sa as *const _ as *const _, std::mem::size_of_val(&sa) as _);
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                libc::close(fd);
                return Err(e);
            }
        }
        Ok(fd)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

/// Pending error of a socket (after a non-blocking connect).
pub fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers.
    cvt(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut _ as *mut _, &mut len)
    })?;
    if err != 0 {
        Err(io::Error::from_raw_os_error(err))
    } else {
        Ok(())
    }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid; MSG_NOSIGNAL avoids SIGPIPE on a closed peer.
    let r = unsafe { libc::send(fd, buf.as_ptr() as *const _, buf.len(), libc::MSG_NOSIGNAL) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Sends as much of `out` as the socket takes now, removing what was sent; stops when it
/// would block (the rest waits for `EPOLLOUT`). Errors other than would-block are returned.
pub fn send_pending(fd: RawFd, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match write(fd, out) {
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes with an RST (linger 0) so thousands of client sockets leave no TIME_WAIT behind.
pub fn close_abort(fd: RawFd) {
    let lg = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: fd is ours; linger struct is valid.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &lg as *const _ as *const _,
            std::mem::size_of_val(&lg) as _,
        );
        libc::close(fd);
    }
}

pub fn close(fd: RawFd) {
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

pub struct Epoll(RawFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        Ok(Epoll(cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?))
    }
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: valid event struct.
        cvt(unsafe { libc::epoll_ctl(self.0, op, fd, &mut ev) }).map(|_| ())
    }
    pub fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
    }
    pub fn modify(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
    }
    /// Keeps `fd`'s interest in step with its pending output: `EPOLLIN`, plus `EPOLLOUT`
    /// while `want`. `registered` is what is registered now; nothing is done if it matches.
    pub fn want_write(&self, fd: RawFd, data: u64, want: bool, registered: &mut bool) -> io::Result<()> {
        if want == *registered {
            return Ok(());
        }
        *registered = want;
        let ev = libc::EPOLLIN as u32 | if want { libc::EPOLLOUT as u32 } else { 0 };
        self.modify(fd, ev, data)
    }

    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: events buffer valid for its length.
        let r = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
        r.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// A CLOCK_MONOTONIC timerfd armed at absolute deadlines (sub-millisecond precision, which
/// epoll_wait's millisecond timeout lacks).
pub struct TimerFd(pub RawFd);

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: plain syscall.
        Ok(TimerFd(cvt(unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        })?))
    }
    pub fn arm_at(&self, deadline_ns: u64) {
        let d = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: (d / 1_000_000_000) as _, tv_nsec: (d % 1_000_000_000) as _ },
        };
        // SAFETY: valid itimerspec.
        unsafe { libc::timerfd_settime(self.0, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
    }
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = read(self.0, &mut b);
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// Pins the calling thread to one CPU (best effort) and asks for 1 ns timer slack.
pub fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; calls only affect this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// CPUs a process may run on (None if unknown).
pub fn affinity_of(pid: u32) -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data, sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid as libc::pid_t, std::mem::size_of_val(&set), &mut set) != 0 {
            return None;
        }
        Some((0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect())
    }
}

pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Opens a blocking TCP connection to `dst` within `timeout`, with `SO_RCVBUF` set *before*
/// the connect when asked (the window scale is fixed at the SYN, so setting it later would not
/// shrink the advertised window). `TCP_NODELAY` is on. Used by the hostile clients, which want
/// exactly this: a tiny receive window they never drain.
pub fn connect_with_rcvbuf(
    dst: SocketAddr,
    rcvbuf: Option<usize>,
    timeout: std::time::Duration,
) -> io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = dst else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "only IPv4 targets are supported"));
    };
    // SAFETY: socket/setsockopt/connect/poll with correctly sized, initialised arguments; the
    // fd is closed on every error path and otherwise owned by the returned TcpStream.
    unsafe {
        let fd = cvt(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
        let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if let Some(b) = rcvbuf {
            let v = b.min(i32::MAX as usize) as libc::c_int;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v as *const _ as *const _, sz);
        }
        let one: libc::c_int = 1;
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const _ as *const _, sz);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let sa = sockaddr(v4);
        if libc::connect(fd, &sa as *const _ as *const _, std::mem::size_of_val(&sa) as _) < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                libc::close(fd);
                return Err(e);
            }
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
            match poll1(fd, libc::POLLOUT, ms) {
                Ok(0) => {
                    libc::close(fd);
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                }
                Ok(_) => {
                    if let Err(e) = socket_error(fd) {
                        libc::close(fd);
                        return Err(e);
                    }
                }
                Err(e) => {
                    libc::close(fd);
                    return Err(e);
                }
            }
        }
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        Ok(std::net::TcpStream::from_raw_fd(fd))
    }
}

/// `poll(2)` on one fd: the returned events (0 on timeout). EINTR counts as a timeout.
pub fn poll1(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(if r == 0 { 0 } else { p.revents })
}

/// Lowers (positive `nice`) the calling thread's scheduling priority; best effort. Lets the
/// measuring thread win the loadgen core from a busy attacker thread, so neighbours' latency
/// reflects the server rather than the loadgen.
pub fn nice_current_thread(nice: i32) {
    // SAFETY: gettid/setpriority on the calling thread only.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

/// One IPv4 TCP socket as the kernel lists it in /proc/net/tcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEntry {
    /// Kernel TCP state: 1 ESTABLISHED, 4 FIN_WAIT1, 7 CLOSE, 8 CLOSE_WAIT, ... (see
    /// include/net/tcp_states.h).
    pub state: u8,
    /// Bytes in the send queue not yet acknowledged by the peer.
    pub tx_queue: u64,
    pub rx_queue: u64,
    /// Socket inode; 0 once no process holds the socket (closed, still draining in the kernel).
    pub inode: u64,
}

/// Finds the socket whose local end is `local` and remote end is `remote` (e.g. the server's
/// side of one of our connections: local = server address, remote = our address).
pub fn tcp_entry(local: SocketAddrV4, remote: SocketAddrV4) -> Option<TcpEntry> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (l, r) = (proc_addr(local), proc_addr(remote));
    text.lines().skip(1).find_map(|line| parse_tcp_line(line, &l, &r))
}

/// `127.0.0.1:8080` → `0100007F:1F90` (address as the kernel prints the u32, port big-endian).
fn proc_addr(a: SocketAddrV4) -> String {
    format!("{:08X}:{:04X}", u32::from_ne_bytes(a.ip().octets()), a.port())
}

fn parse_tcp_line(line: &str, local: &str, remote: &str) -> Option<TcpEntry> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[1] != local || f[2] != remote {
        return None;
    }
    let (tx, rx) = f[4].split_once(':')?;
    Some(TcpEntry {
        state: u8::from_str_radix(f[3], 16).ok()?,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        inode: f[9].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_line() {
        let a = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 8080);
        let b = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40000);
        assert_eq!(proc_addr(a), "0100007F:1F90");
        let line = "   3: 0100007F:1F90 0100007F:9C40 01 002B1100:00000000 01:00000014 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1";
        let e = parse_tcp_line(line, &proc_addr(a), &proc_addr(b)).unwrap();
        assert_eq!(e, TcpEntry { state: 1, tx_queue: 0x2B1100, rx_queue: 0, inode: 123456 });
        assert!(parse_tcp_line(line, &proc_addr(b), &proc_addr(a)).is_none());
    }

    #[test]
    fn process_cpu_time_of_a_pid() {
        let child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5"])
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (a, b) = (pid_cpu_ns(pid).unwrap(), pid_stat_cpu_ns(pid).unwrap());
        // The clock is finer than the ticks but counts the same time.
        assert!(a > 0 && a + 20_000_000 >= b, "clock {a} ns, stat {b} ns");
        assert_eq!(pid_cpu_ns(u32::MAX >> 2), None);
        assert_eq!(pid_cpu_ns(0), None);
        let mut child = child;
        child.kill().ok();
        child.wait().ok();
        assert_eq!(pid_cpu_ns(pid), None, "a reaped process has no CPU clock");
        let own = pid_cpu_ns(std::process::id()).unwrap();
        let (u, s) = process_cpu_ns();
        assert!(own + 20_000_000 >= u + s, "own {own} vs getrusage {}", u + s);
    }

    #[test]
    fn finds_a_live_loopback_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = connect_with_rcvbuf(l.local_addr().unwrap(), Some(4096), std::time::Duration::from_secs(2))
            .unwrap();
        let (s, _) = l.accept().unwrap();
        let (SocketAddr::V4(srv), SocketAddr::V4(cli)) = (s.local_addr().unwrap(), c.local_addr().unwrap())
        else {
            panic!("v4")
        };
        let e = tcp_entry(srv, cli).expect("server side listed");
        assert_eq!(e.state, 1);
        assert_ne!(e.inode, 0);
    }
}
