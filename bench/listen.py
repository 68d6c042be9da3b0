#!/usr/bin/env python3
"""taskhook listen benchmark: one listener on a private RabbitMQ node, jobs published back to it.

Usage: python3 bench/listen.py [--events 2000] [--prefetch 8] [--tasks 5]
                               [--latency-rate 50] [--latency-seconds 20] [--rss-events 100000]

Prints, side by side:
  * the floor: raw `git archive --remote --format=tar.gz -1` of the branch manifest (what the
    listener asks for) from the same git daemon, at
    the listener's concurrency (its prefetch count), in fetches per second;
  * the listener's throughput draining --events queued koji build messages, each planned and its
    jobs published with publisher confirms, in events per second, and its share of the floor;
  * publish-to-job latency (p50, p99) at a steady --latency-rate;
  * the listener's RSS after --rss-events events (sampled along the way).
Needs RabbitMQ (/usr/lib/rabbitmq/bin, installed by .ci/run) and makes a venv with pika in
target/bench-venv. Builds the binary a server installs (`cargo build --profile dist`). Nothing
is left running.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import run as common  # noqa: E402  (make_repo, Daemon, table)

VENV = os.path.join(ROOT, "target", "bench-venv")
RMQ = "/usr/lib/rabbitmq/bin"
TOPIC = "org.fedoraproject.prod.buildsys.build.state.change"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def pika_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(os.path.join(VENV, ".ready")):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "pika"], check=True)
        open(os.path.join(VENV, ".ready"), "w").close()
    return py


class Broker:
    def __init__(self, base):
        self.dir = os.path.join(base, "rabbitmq")
        for d in ["home", "mnesia", "log"]:
            os.makedirs(os.path.join(self.dir, d))
        open(os.path.join(self.dir, "enabled_plugins"), "w").write("[].\n")
        open(os.path.join(self.dir, "env.conf"), "w").close()
        self.port, self.epmd = free_port(), free_port()
        self.node = f"taskhook-bench-{self.port}@localhost"
        self.env = dict(os.environ, HOME=f"{self.dir}/home", RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(free_port()), RABBITMQ_MNESIA_BASE=f"{self.dir}/mnesia",
                        RABBITMQ_LOG_BASE=f"{self.dir}/log",
                        RABBITMQ_ENABLED_PLUGINS_FILE=f"{self.dir}/enabled_plugins",
                        RABBITMQ_PID_FILE=f"{self.dir}/pid", RABBITMQ_CONF_ENV_FILE=f"{self.dir}/env.conf",
                        ERL_EPMD_ADDRESS="127.0.0.1", ERL_EPMD_PORT=str(self.epmd))
        self.p = subprocess.Popen([f"{RMQ}/rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        subprocess.run([f"{RMQ}/rabbitmqctl", "-n", self.node, "--timeout", "60", "wait", f"{self.dir}/pid"],
                       env=self.env, capture_output=True)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def stop(self):
        subprocess.run([f"{RMQ}/rabbitmqctl", "-n", self.node, "stop"], env=self.env, capture_output=True)
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
        subprocess.run(["epmd", "-port", str(self.epmd), "-kill"], env=self.env, capture_output=True)


# The AMQP side of the benchmark runs in the venv's Python (pika): publish events with their
# publish time in the body, and record when each job arrives.
HELPER = r'''
import json, sys, time, pika
url, mode = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
if mode == "setup":
    ch.queue_declare("bench-jobs", durable=True)
    ch.queue_bind("bench-jobs", "amq.topic", "taskhook.job.#")
    ch.queue_purge("bench-jobs")
    # The listener's queue, as its configuration declares it, so a backlog can wait in it.
    ch.queue_declare("bench", durable=True)
    ch.queue_bind("bench", "amq.topic", "''' + TOPIC + r'''")
elif mode == "publish":
    n, rate, first = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    ch.confirm_delivery()
    start = time.time()
    for i in range(first, first + n):
        if rate:
            delay = start + (i - first) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        body = {"new": 1, "instance": "primary", "name": "bench", "version": str(i),
                "release": "1.el7", "owner": "b", "build_id": i, "sent": time.time()}
        ch.basic_publish("amq.topic", "''' + TOPIC + r'''", json.dumps(body).encode(),
                         pika.BasicProperties(delivery_mode=2))
    print(start)
elif mode == "collect":
    want, timeout = int(sys.argv[3]), float(sys.argv[4])
    seen, out = set(), []
    deadline = time.time() + timeout
    def on(chan, method, props, body):
        job = json.loads(body)
        v = job["item"].split("-")[1]
        if v not in seen:
            seen.add(v); out.append((v, time.time()))
        chan.basic_ack(method.delivery_tag)
        if len(seen) >= want:
            chan.stop_consuming()
    ch.basic_qos(prefetch_count=500)
    ch.basic_consume("bench-jobs", on)
    while len(seen) < want and time.time() < deadline:
        conn.process_data_events(time_limit=0.5)
    print(json.dumps(out))
conn.close()
'''


def helper(py, url, *args, background=False):
    cmd = [py, "-c", HELPER, url, *map(str, args)]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE)
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def archive_floor(url, count, workers):
    def one(_):
        # The request the listener makes: gzip'd at the server's fastest level.
        subprocess.run(["git", "archive", f"--remote={url}", "--format=tar.gz", "-1", "refs/meta/tasks",
                        "branches/epel7.json"], check=True, capture_output=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(min(workers * 4, count))))  # warm up
        t = time.perf_counter()
        list(pool.map(one, range(count)))
        return count / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--prefetch", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--latency-rate", type=float, default=50)
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--rss-events", type=int, default=100000)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--profile", "dist", "--quiet"], cwd=ROOT, check=True)
    py = pika_python()
    base = tempfile.mkdtemp(prefix="taskhook-bench-listen-")
    broker = daemon = listener = None
    try:
        srv = os.path.join(base, "srv")
        os.makedirs(srv)
        work, bare = common.make_repo(srv, "bench", a.tasks, filler_kb=1)
        common.run(["git", "push", "-q", bare, "master:epel7"], work)
        daemon = common.Daemon(srv)
        remote = f"git://127.0.0.1:{daemon.port}/{{name}}.git"
        broker = Broker(base)
        cfg = os.path.join(base, "listen.toml")
        with open(cfg, "w") as f:
            f.write(f'''amqp_url = "{broker.url}"
[queues.bench]
durable = true
auto_delete = false
exclusive = false
[[bindings]]
queue = "bench"
exchange = "amq.topic"
routing_keys = ["{TOPIC}"]
[qos]
prefetch_count = {a.prefetch}
[consumer_config]
remote = "{remote}"
cache_dir = "{base}/cache"
''')
        helper(py, broker.url, "setup")
        print(f"machine: {os.cpu_count()} cores; {a.tasks} tasks per event; prefetch {a.prefetch}")
        floor = archive_floor(f"git://127.0.0.1:{daemon.port}/bench.git", a.events, a.prefetch)

        # Throughput: a backlog of events, drained by one listener from its start (which
        # includes connecting and declaring: a few milliseconds).
        helper(py, broker.url, "publish", a.events, 0, 0)
        collector = helper(py, broker.url, "collect", a.events, 60, background=True)
        time.sleep(0.5)  # the collector is consuming
        t0 = time.time()
        log = open(os.path.join(base, "listen.log"), "w")
        listener = subprocess.Popen([common.BIN, "listen", "--config", cfg], stderr=log,
                                    stdout=subprocess.DEVNULL)
        arrived = json.loads(collector.communicate()[0])
        if len(arrived) < a.events:
            sys.exit("the listener did not deliver every job:\n" + open(os.path.join(base, "listen.log")).read()[-3000:])
        drain = max(ts for _, ts in arrived) - t0
        rate = len(arrived) / drain if drain else 0
        common.table("Listener throughput vs the fetch floor", ["what", "per second", "share of floor"], [
            [f"git archive --remote, {a.prefetch} at a time", f"{floor:.0f}", "100%"],
            [f"taskhook listen, {len(arrived)} queued events, jobs confirmed", f"{rate:.0f}",
             f"{100 * rate / floor:.0f}%"],
        ])

        # Latency at a steady rate.
        n = int(a.latency_rate * a.latency_seconds)
        first = a.events
        collector = helper(py, broker.url, "collect", n, a.latency_seconds + 60, background=True)
        time.sleep(0.5)
        started = float(helper(py, broker.url, "publish", n, a.latency_rate, first).split()[-1])
        arrived = json.loads(collector.communicate()[0])
        # Event i is sent at started + (i - first) / rate; its job names the event's version i.
        lat = sorted((ts - (started + (int(v) - first) / a.latency_rate)) * 1000 for v, ts in arrived)
        if lat:
            p50 = lat[len(lat) // 2]
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            common.table("Publish-to-job latency", ["rate", "events", "p50 ms", "p99 ms"],
                         [[f"{a.latency_rate:.0f}/s", len(lat), f"{p50:.1f}", f"{p99:.1f}"]])

        # Memory over many events.
        if a.rss_events:
            rows = [["0 (after the runs above)", rss_kb(listener.pid) // 1024]]
            done = 0
            first = a.events + n
            step = max(a.rss_events // 5, 1)
            while done < a.rss_events:
                k = min(step, a.rss_events - done)
                collector = helper(py, broker.url, "collect", k, 3600, background=True)
                time.sleep(0.5)
                helper(py, broker.url, "publish", k, 0, first + done)
                collector.communicate()
                done += k
                rows.append([done, rss_kb(listener.pid) // 1024])
            common.table("Listener RSS", ["events handled", "RSS MB"], rows)
    finally:
        if listener:
            listener.send_signal(signal.SIGTERM)
            try:
                listener.wait(timeout=20)
            except subprocess.TimeoutExpired:
                listener.kill()
        if broker:
            broker.stop()
        if daemon:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
