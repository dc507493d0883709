"""Shared by scripts/e2e and bench/run: start peers as tracked processes, stop them all by PID
whatever happens, wait for conditions, fetch URLs, make a test CA with openssl."""

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

PROCS = []  # (name, Popen)


def log(msg, tag="peers"):
    print(f"[{tag} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)


def start(name, argv, logdir, **kw):
    out = open(os.path.join(logdir, f"{name}.log"), "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
    PROCS.append((name, p))
    log(f"started {name} (pid {p.pid})")
    return p


def stop(p, name, grace=10):
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log(f"stopped {name} (pid {p.pid})")


def stop_all():
    for name, p in reversed(PROCS):
        try:
            stop(p, name)
        except Exception as e:  # keep stopping the others
            log(f"could not stop {name}: {e}")
    PROCS.clear()


def on_signals_raise():
    """SIGINT/SIGTERM raise KeyboardInterrupt, so `finally: stop_all()` runs."""
    def raise_(signum, frame):
        raise KeyboardInterrupt()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, raise_)


def wait_for(what, fn, timeout=60, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def http_get(url, timeout=10):
    with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout) as r:
        return r.status, r.read().decode()


def http_json(url, timeout=10):
    return json.loads(http_get(url, timeout)[1])


def query_url(base, **params):
    return f"{base}?{urllib.parse.urlencode(params)}"


def make_ca(d, leaves):
    """A P-256 test CA in `d` and one certificate per entry of `leaves` (name → SAN list;
    entries that parse as IP addresses become IP SANs). Returns (ca_pem, {name: (pem, key)})."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=mxping test CA"])
    certs = {}
    for name, sans in leaves.items():
        key, csr, crt, ext = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "pem", "ext"))

        def san(s):
            return ("IP:" if s.replace(".", "").isdigit() or ":" in s else "DNS:") + s

        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(san(s) for s in sans) + "\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={sans[0]}"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", "30", "-extfile", ext])
        certs[name] = (crt, key)
    return ca, certs


def apt_install(packages):
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        log(f"apt-get install {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def cpu_seconds(pid):
    """User + system CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
