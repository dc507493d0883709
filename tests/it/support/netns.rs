//! Networks the tests make for themselves: a network namespace of the test's own (so it can
//! change routes and IPv6 without touching the machine's), and inside it a second place with
//! no IPv6 at all, joined to the first by a veth pair, from which 127.0.0.0/8 is reached
//! through the pair. A monitor started there sees the test world over IPv4 and has no route
//! for IPv6, as on a host without IPv6.

use std::path::Path;
use std::process::Command as StdCommand;

fn run(cmd: &[&str]) {
    let out = StdCommand::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `body` on a thread of its own in a new network namespace (made here, gone when the
/// thread ends) with loopback up, IPv4 and IPv6 (`::1`). Processes started from the body run
/// in it too.
pub fn in_a_network_of_its_own<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("a new network namespace (run as root or in `unshare -rn`)");
        run(&["ip", "link", "set", "lo", "up"]);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// The address a process in the IPv4-only place has (its web listener binds it).
pub const IPV4_ONLY_ADDR: &str = "10.254.0.2";

/// `program` with `args`, to run in a new IPv4-only place once [`ipv4_only_ready`] was called
/// with its process ID: it waits for `ready` (a file) to exist, then runs the program.
pub fn ipv4_only_command(ready: &Path, program: &str, args: &[String]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("unshare");
    c.args([
        "--net",
        "--",
        "sh",
        "-c",
        "while [ ! -e \"$0\" ]; do sleep 0.02; done; exec \"$@\"",
    ]);
    c.arg(ready).arg(program).args(args);
    c
}

/// Joins the place of process `pid` (started by [`ipv4_only_command`]) to this namespace:
/// a veth pair, 10.254.0.1 here and [`IPV4_ONLY_ADDR`] there, 127.0.0.0/8 routed through it
/// (`route_localnet` lets loopback addresses cross the pair), IPv6 off there. Then lets the
/// program run.
pub fn ipv4_only_ready(pid: u32, ready: &Path) {
    // `unshare --net` makes the place when it runs, after the spawn returns: until then the
    // process is still in this namespace, and the pair's far end would land here.
    let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let theirs = format!("/proc/{pid}/ns/net");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_link(&theirs).is_ok_and(|ns| ns == ours) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} did not enter a network namespace of its own"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = pid.to_string();
    run(&[
        "ip", "link", "add", "mxv0", "type", "veth", "peer", "name", "mxv1", "netns", &pid,
    ]);
    run(&["ip", "addr", "add", "10.254.0.1/30", "dev", "mxv0"]);
    run(&["ip", "link", "set", "mxv0", "up"]);
    run(&["sysctl", "-qw", "net.ipv4.conf.mxv0.route_localnet=1"]);
    let there = format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && \
         sysctl -qw net.ipv6.conf.default.disable_ipv6=1 && \
         ip addr add {IPV4_ONLY_ADDR}/30 dev mxv1 && ip link set mxv1 up && \
         sysctl -qw net.ipv4.conf.mxv1.route_localnet=1 && \
         ip route add 127.0.0.0/8 via 10.254.0.1 dev mxv1 src {IPV4_ONLY_ADDR}"
    );
    run(&["nsenter", "-t", &pid, "-n", "sh", "-c", &there]);
    std::fs::write(ready, b"").unwrap();
}
