"""``latentspeed collect``: one supervised benchmark run, from start-up to analysis.

Order of events: run directory → system snapshot → monitors → mock exchange (wait for
``Listening on port``) → engine (pinned when asked; wait for ``Connected to exchange``) →
perf stat → run for the duration → stop engine and exchange gracefully (SIGINT, then
SIGTERM, then SIGKILL) → final snapshot → analysis → manifest.json with the eight
verification steps. Every path written into the manifest is relative to the run directory.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import ConfigError, load_yaml
from ..testing import free_port
from . import procfs, snapshot
from .analysis import REPORT_FILE, AnalysisError, analyze_run, load_latency, parse_stats_lines
from .checks import INSTALL_HINT, latentspeed_executable
from .monitors import FILES as MONITOR_FILES
from .monitors import SystemMonitor

log = logging.getLogger("latentspeed.collect")

LISTENING = "Listening on port"  # the mock exchange's ready line (issue 4)
CONNECTED = "Connected to exchange"  # the engine's venue-connect line (contracts.md)
CONFIG_FILE = "config/trading_config.yml"
LATENCY_FILE = "latency.jsonl"
LOGS = {"mock_exchange": "logs/mock_exchange.log", "engine": "logs/engine.log", "perf": "logs/perf_stat.txt"}

#: The eight verification steps: (stable id used in manifest.json, what the step checks).
STEPS = (
    ("binary_installed", "latentspeed installed: the latentspeed command runs (latentspeed --version)"),
    ("exchange_listening", 'Mock exchange up: its log shows "Listening on port"'),
    ("engine_connected", 'Engine connects: its log shows "Connected to exchange"'),
    ("market_data_flows", "Market data flows: stats show RX packets > 0"),
    ("orders_generated", "Orders generated: stats show Orders > 0"),
    ("fills_received", "Fills received: stats show Fills > 0"),
    ("data_collected", "Data collected: the run directory holds every expected file"),
    ("report_generated", "Analysis works: report.json generated with latency statistics"),
)

DEFAULT_RISK = {
    "max_order_qty": 1.0,
    "max_notional": 100000,
    "max_position": 5,
    "price_band_bps": 100,
    "max_orders_per_second": 200,
    "max_open_orders": 50,
    "max_loss": 10000,
}


@dataclass
class CollectOptions:
    duration: float = 300.0
    out: Path = Path("data")
    network_core: int | None = None
    strategy_core: int | None = None
    config: Path | None = None
    tick_rate: float = 10.0
    fill_prob: float = 80.0
    symbols: list[str] = field(default_factory=lambda: ["BTC-USD"])
    interval: float = 1.0
    analyze: bool = True
    plots: bool = True
    progress: bool | None = None  # None: when stderr is a terminal
    startup_timeout: float = 30.0
    stop_timeout: float = 15.0


def utc_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def make_run_dir(out: Path) -> Path:
    """``out/YYYYmmdd_HHMMSS`` (UTC), with a suffix if that second is taken."""
    out.mkdir(parents=True, exist_ok=True)
    base = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    for n in range(1, 1000):
        run = out / (base if n == 1 else f"{base}_{n}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run directory under {out}")


# --- engine config ---------------------------------------------------------------------


def default_engine_config(port: int, symbols: list[str]) -> dict:
    """The contract's engine config: market maker on the mock exchange, in-process mock feed."""
    return {
        "log": {"level": "info"},
        "market_data": {
            "window_size": 20,
            "depth_levels": 10,
            "feeds": [{"exchange": "mock", "host": "127.0.0.1", "port": port, "symbols": list(symbols)}],
        },
        "venue": {"exchange": "mock", "host": "127.0.0.1", "port": port},
        "strategies": [{"name": "market_maker", "symbols": list(symbols), "params": {}}],
        "risk": dict(DEFAULT_RISK),
        "fees": {"maker_bps": 0.0, "taker_bps": 0.0},
        "latency": {"file": LATENCY_FILE},
        "output_dir": ".",  # the engine runs inside the run directory
        "stats_interval": 1.0,
        "cancel_on_exit": True,
    }


def engine_config_from_template(template: dict, port: int, notes: list[str]) -> dict:
    """The user's config, pointed at this run's mock exchange; every change is noted."""
    cfg = copy.deepcopy(template)
    md = cfg.setdefault("market_data", {})
    if not isinstance(md, dict):
        raise ConfigError(None, "market_data", "expected a mapping")
    if md.pop("zmq", None) is not None:
        notes.append("market_data.zmq replaced by an in-process mock feed")
    feeds = md.get("feeds") or []
    mock_feeds = [f for f in feeds if isinstance(f, dict) and str(f.get("exchange", "")).lower() == "mock"]
    if not mock_feeds:
        symbols = sorted({s for st in cfg.get("strategies") or [] for s in st.get("symbols", [])}) or [
            "BTC-USD"
        ]
        feeds = [*feeds, {"exchange": "mock", "symbols": symbols}]
        mock_feeds = [feeds[-1]]
        notes.append(f"added an in-process mock feed for {', '.join(symbols)}")
    for f in mock_feeds:
        f["host"], f["port"] = "127.0.0.1", port
    md["feeds"] = feeds
    venue = cfg.get("venue") if isinstance(cfg.get("venue"), dict) else {}
    if str(venue.get("exchange", "")).lower() != "mock":
        notes.append(f"venue {venue.get('exchange')!r} replaced by the mock exchange")
        venue = {"exchange": "mock"}
    venue["host"], venue["port"] = "127.0.0.1", port
    cfg["venue"] = venue
    latency = cfg.get("latency") if isinstance(cfg.get("latency"), dict) else {}
    if "file" in latency and latency["file"] != LATENCY_FILE:
        notes.append(f"latency.file set to {LATENCY_FILE} (was {latency.get('file')!r})")
    cfg["latency"] = {**latency, "file": LATENCY_FILE}
    if cfg.get("output_dir", ".") != ".":
        notes.append(f"output_dir set to the run directory (was {cfg['output_dir']!r})")
    cfg["output_dir"] = "."  # the engine runs inside the run directory
    logcfg = cfg.get("log") if isinstance(cfg.get("log"), dict) else {}
    if logcfg.pop("file", None):
        notes.append("log.file dropped: the engine's output is captured in logs/engine.log")
    cfg["log"] = logcfg
    return cfg


def config_symbols(cfg: dict) -> list[str]:
    """Every symbol the mock exchange must define for this engine config."""
    symbols: set[str] = set()
    for st in cfg.get("strategies") or []:
        symbols.update(str(s).upper() for s in st.get("symbols", []))
    for f in (cfg.get("market_data") or {}).get("feeds") or []:
        if str(f.get("exchange", "")).lower() == "mock":
            symbols.update(str(s).upper() for s in f.get("symbols", []))
    return sorted(symbols)


# --- child processes -------------------------------------------------------------------


class Child:
    """A supervised child process with its output in a log file inside the run directory."""

    def __init__(self, name: str, argv: list[str], run_dir: Path, log_rel: str, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_rel = log_rel
        self.log_path = run_dir / log_rel
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # Own session: a Ctrl-C in the terminal reaches only `collect`, which then stops the
        # children in order (engine first, so it can cancel its orders against a live exchange).
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=run_dir, env=env, start_new_session=True
        )
        self.stopped_by: str | None = None
        self.started_at = time.time()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, nbytes: int = 4096) -> str:
        """The end of the log, without reading a long run's whole file every second."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, self.log_path.stat().st_size - nbytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Poll the log for ``text`` until it shows, the process dies or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            if not self.alive():
                return text in self.log_text()
            time.sleep(0.05)
        return False

    def stop(self, timeout: float) -> int | None:
        """SIGINT (graceful: the engine cancels, flushes and prints its summary), then SIGTERM, then SIGKILL."""
        if self.alive():
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    self.stopped_by = sig.name
                    break
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0fs of %s", self.name, wait, sig.name)
        else:
            self.stopped_by = "exited by itself"
        self._log.close()
        return self.proc.returncode

    def describe(self) -> dict:
        return {
            "argv": [Path(self.argv[0]).name, *self.argv[1:]],
            "pid": self.pid,
            "log": self.log_rel,
            "exit_code": self.proc.returncode,
            "stopped_by": self.stopped_by,
        }


def latentspeed_argv() -> list[str]:
    exe = latentspeed_executable()
    return [exe] if exe else [sys.executable, "-m", "latentspeed_core"]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of ``pid`` (threads started later inherit the main thread's mask)."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")] if os.path.isdir(f"/proc/{pid}/task") else [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cores)
        except ProcessLookupError:
            pass


def resolve_cores(opts: CollectOptions) -> tuple[set[int], dict]:
    """The cores to pin the engine to, or none with a warning when this machine lacks them."""
    requested = {"network": opts.network_core, "strategy": opts.strategy_core}
    wanted = {c for c in requested.values() if c is not None}
    info: dict = {"requested": requested, "pinned": [], "warning": None}
    if not wanted:
        return set(), info
    available = procfs.online_cpus() & os.sched_getaffinity(0)
    missing = wanted - available
    if missing:
        info["warning"] = (
            f"core(s) {procfs.format_cpu_list(missing)} not available here "
            f"(usable: {procfs.format_cpu_list(available)}); engine not pinned"
        )
        log.warning("%s", info["warning"])
        return set(), info
    info["pinned"] = sorted(wanted)
    return wanted, info


# --- verification ----------------------------------------------------------------------


def expected_files() -> list[str]:
    return [
        *[
            f"system/{n}"
            for n in (
                "cmdline.txt",
                "cpuinfo.txt",
                "meminfo.txt",
                "interrupts_start.txt",
                "interrupts_end.txt",
                "nic_stats_start.json",
                "nic_stats_end.json",
                "system.json",
                "versions.json",
            )
        ],
        *[f"monitors/{n}" for n in MONITOR_FILES],
        CONFIG_FILE,
        LOGS["mock_exchange"],
        LOGS["engine"],
        LOGS["perf"],
        LATENCY_FILE,
    ]


def missing_files(run_dir: Path) -> list[str]:
    """Expected files that are absent or empty, and monitor CSVs with no data row."""
    missing = []
    for rel in expected_files():
        p = run_dir / rel
        if not p.is_file() or p.stat().st_size == 0:
            missing.append(rel)
        elif rel.startswith("monitors/") and len(p.read_text().splitlines()) < 2:
            missing.append(rel + " (no samples)")
    return missing


def engine_counts(run_dir: Path, engine_log: str) -> dict:
    """RX packets / orders / fills: the engine's last STATS line, else its summary record."""
    lines = parse_stats_lines(engine_log)
    if lines:
        return {**lines[-1], "source": "STATS line"}
    path = run_dir / LATENCY_FILE
    if path.is_file():
        _, stats, summary, _ = load_latency(path)
        final = summary or (stats[-1] if stats else None)
        if final:
            return {**final, "source": "latency summary"}
    return {"source": "none"}


def step(n: int, passed: bool, detail: str) -> dict:
    name, description = STEPS[n - 1]
    return {"step": n, "name": name, "description": description, "passed": bool(passed), "detail": detail}


def binary_step() -> dict:
    exe = latentspeed_executable()
    if exe is None:
        return step(1, False, f"latentspeed command not found ({INSTALL_HINT})")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return step(1, False, f"latentspeed --version failed: {exc}")
    ok = out.returncode == 0 and out.stdout.startswith("latentspeed")
    return step(1, ok, out.stdout.strip() or out.stderr.strip()[-200:])


# --- the run ---------------------------------------------------------------------------


class Collection:
    """One collection run; :meth:`run` returns the manifest (also written to manifest.json)."""

    def __init__(self, opts: CollectOptions, registry=None):
        self.opts = opts
        #: When given, the engine config is validated in-process before anything starts.
        self.registry = registry
        self.notes: list[str] = []
        self.children: dict[str, Child] = {}
        self.interrupted = False
        self.trading_started: float | None = None
        self.trading_s: float | None = None

    def _progress(self):
        show = self.opts.progress if self.opts.progress is not None else sys.stderr.isatty()
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        return Progress(
            TextColumn("[bold]collect[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
            disable=not show,
            transient=False,
        )

    def _wait_duration(self, engine: Child) -> None:
        start = time.monotonic()
        self.trading_started = start
        end = start + self.opts.duration
        with self._progress() as progress:
            task = progress.add_task("run", total=self.opts.duration, status="")
            last_log_check = 0.0
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if not engine.alive():
                    self.notes.append(f"engine exited early with code {engine.proc.returncode}")
                    log.error("engine exited early with code %s", engine.proc.returncode)
                    break
                if now - last_log_check >= 1.0:
                    last_log_check = now
                    stats = parse_stats_lines(engine.log_tail())
                    if stats:
                        s = stats[-1]
                        status = f"rx {s.get('rx_packets', 0)} orders {s.get('orders', 0)} fills {s.get('fills', 0)}"
                        progress.update(task, status=status)
                progress.update(task, completed=min(self.opts.duration, now - start))
                time.sleep(min(0.2, max(0.0, end - now)))
            progress.update(task, completed=min(self.opts.duration, time.monotonic() - start))

    def run(self) -> tuple[Path, dict]:
        opts = self.opts
        cores, core_info = resolve_cores(opts)
        if core_info["warning"]:
            self.notes.append(core_info["warning"])
        # The config is built and validated before anything starts: a bad template fails at once.
        port = free_port()
        if opts.config is not None:
            engine_cfg = engine_config_from_template(load_yaml(opts.config), port, self.notes)
        else:
            engine_cfg = default_engine_config(port, opts.symbols)
        if opts.network_core is not None or opts.strategy_core is not None:
            if cores:
                engine_cfg["cpu_affinity"] = sorted(cores)
            elif engine_cfg.pop("cpu_affinity", None) is not None:
                self.notes.append("cpu_affinity dropped from the config: those cores are not available")
        if self.registry is not None:
            from ..engine.config import resolve

            resolve(engine_cfg, self.registry, f"{opts.config or 'generated config'} (as used by collect)")

        run_dir = make_run_dir(Path(opts.out))
        started = time.time()
        log.info("collecting into %s for %ss", run_dir, opts.duration)
        (run_dir / "config").mkdir()
        if opts.config is not None:
            shutil.copyfile(opts.config, run_dir / "config" / ("template_" + Path(opts.config).name))
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(engine_cfg, sort_keys=False))
        symbols = config_symbols(engine_cfg) or opts.symbols
        mock_args = {
            "port": port,
            "tick_rate": opts.tick_rate,
            "fill_prob": opts.fill_prob,
            "symbols": symbols,
        }

        snapshot.write_start(run_dir / "system", cores)
        monitor = SystemMonitor(run_dir / "monitors", interval=opts.interval)
        monitor.start()
        previous_sigterm = _set_signal(signal.SIGTERM, _raise_interrupt)
        exchange_ready = engine_connected = False
        perf_info: dict = {}
        try:
            exe = latentspeed_argv()
            mock = self._start(
                "mock_exchange",
                [
                    *exe,
                    "mock-exchange",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--tick-rate",
                    _num(opts.tick_rate),
                    "--fill-prob",
                    _num(opts.fill_prob),
                    "--symbols",
                    ",".join(symbols),
                ],
                run_dir,
                monitor,
            )
            exchange_ready = mock.wait_for_line(f"{LISTENING}", opts.startup_timeout)
            if not exchange_ready:
                raise CollectError(
                    f"mock exchange not listening after {opts.startup_timeout}s (see {mock.log_rel})"
                )
            engine = self._start("engine", [*exe, "engine", "--config", CONFIG_FILE], run_dir, monitor)
            if cores:
                pin(engine.pid, cores)
                log.info("engine pinned to cores %s", procfs.format_cpu_list(cores))
            perf_info = self._start_perf(engine.pid, run_dir, monitor)
            engine_connected = engine.wait_for_line(CONNECTED, opts.startup_timeout)
            if not engine.alive():
                last = (engine.log_text().strip().splitlines() or ["(no output)"])[-1]
                self.notes.append(f"engine exited with code {engine.proc.returncode}: {last[-300:]}")
            elif not engine_connected:
                self.notes.append(f"engine did not log {CONNECTED!r} within {opts.startup_timeout}s")
            if engine.alive():
                self._wait_duration(engine)
        except KeyboardInterrupt:
            self.interrupted = True
            self.notes.append("interrupted: stopped early")
            log.warning("interrupted: stopping the run early")
        except CollectError as exc:
            self.notes.append(str(exc))
            log.error("%s", exc)
        finally:
            # A second Ctrl-C must not cut the graceful stop short (open orders, flushed records).
            previous_sigint = _set_signal(signal.SIGINT, _already_stopping)
            if self.trading_started is not None:
                self.trading_s = round(time.monotonic() - self.trading_started, 3)
            self._stop_all(perf_info)
            monitor.stop()
            snapshot.write_end(run_dir / "system")
            _set_signal(signal.SIGTERM, previous_sigterm)
            _set_signal(signal.SIGINT, previous_sigint)
        ended = time.time()
        if "perf" not in self.children:
            (run_dir / LOGS["perf"]).write_text(perf_info.get("note", "perf stat not run") + "\n")

        engine_log = self.children["engine"].log_text() if "engine" in self.children else ""
        mock_log = self.children["mock_exchange"].log_text() if "mock_exchange" in self.children else ""
        counts = engine_counts(run_dir, engine_log)
        steps = [
            binary_step(),
            step(
                2, LISTENING in mock_log, _line_with(mock_log, LISTENING) or "not in logs/mock_exchange.log"
            ),
            step(3, CONNECTED in engine_log, _line_with(engine_log, CONNECTED) or "not in logs/engine.log"),
            step(
                4,
                _count(counts, "rx_packets") > 0,
                f"rx_packets={_count(counts, 'rx_packets')} ({counts['source']})",
            ),
            step(5, _count(counts, "orders") > 0, f"orders={_count(counts, 'orders')} ({counts['source']})"),
            step(6, _count(counts, "fills") > 0, f"fills={_count(counts, 'fills')} ({counts['source']})"),
        ]
        manifest = {
            "manifest_version": 1,
            "tool": "latentspeed collect",
            "run_id": run_dir.name,
            "options": {
                "duration": opts.duration,
                "network_core": opts.network_core,
                "strategy_core": opts.strategy_core,
                "tick_rate": opts.tick_rate,
                "fill_prob": opts.fill_prob,
                "config": Path(opts.config).name if opts.config is not None else None,
            },
            "started_at": utc_iso(started),
            "ended_at": utc_iso(ended),
            "duration_s": {
                "requested": opts.duration,
                "trading": self.trading_s,
                "actual": round(ended - started, 3),
            },
            "interrupted": self.interrupted,
            "host": snapshot.host_info(),
            "versions": snapshot.package_versions(),
            "cores": core_info,
            "config": CONFIG_FILE,
            "config_template": (
                f"config/template_{Path(opts.config).name}" if opts.config is not None else None
            ),
            "latency_file": LATENCY_FILE,
            "mock_exchange": mock_args,
            "processes": {name: c.describe() for name, c in self.children.items()},
            "perf": perf_info,
            "engine_stats": counts,
            "monitors": {
                "interval_s": opts.interval,
                "samples": monitor.samples,
                "errors": monitor.errors,
                "files": [f"monitors/{n}" for n in MONITOR_FILES],
            },
            "report": None,
            "notes": self.notes,
            "files": [],
            "verification": steps,
            "passed": False,
        }
        # Written once before the analysis, which reads it (pinned cores, file names), and again after.
        _write_manifest(run_dir, manifest)
        report = None
        report_error = None
        if opts.analyze:
            try:
                report = analyze_run(run_dir, plots=opts.plots)
            except (AnalysisError, OSError, ValueError) as exc:
                report_error = str(exc)
                log.error("analysis failed: %s", exc)
        missing = missing_files(run_dir)
        steps.append(step(7, not missing, "all present" if not missing else "missing: " + ", ".join(missing)))
        steps.append(_report_step(report, report_error, opts.analyze))
        manifest["report"] = REPORT_FILE if report is not None else None
        manifest["files"] = _file_list(run_dir)
        manifest["passed"] = all(s["passed"] for s in steps)
        _write_manifest(run_dir, manifest)
        return run_dir, manifest

    def _start(self, name: str, argv: list[str], run_dir: Path, monitor: SystemMonitor) -> Child:
        try:
            child = Child(name, argv, run_dir, LOGS[name], env=child_env())
        except OSError as exc:
            raise CollectError(f"cannot start {name} ({argv[0]}): {exc}") from None
        self.children[name] = child
        monitor.watch(name, child.pid)
        log.info("started %s (pid %d)", name, child.pid)
        return child

    def _start_perf(self, pid: int, run_dir: Path, monitor: SystemMonitor) -> dict:
        perf = shutil.which("perf")
        if perf is None:
            note = "perf not available (install linux-tools-$(uname -r)); no hardware counters for this run"
            log.warning("%s", note)
            return {"available": False, "note": note}
        argv = [perf, "stat", "-p", str(pid), "-o", LOGS["perf"] + ".out"]
        # perf writes its counters to -o; its own complaints go to the log.
        try:
            self._start("perf", argv, run_dir, monitor)
        except CollectError as exc:  # optional: the run goes on without counters
            log.warning("%s", exc)
            return {"available": False, "note": str(exc)}
        return {"available": True, "output": LOGS["perf"]}

    def _stop_all(self, perf_info: dict) -> None:
        perf = self.children.get("perf")
        if perf is not None:
            perf.stop(5.0)
            self._merge_perf(perf, perf_info)
        for name in ("engine", "mock_exchange"):
            child = self.children.get(name)
            if child is not None:
                code = child.stop(self.opts.stop_timeout)
                log.info("%s stopped (%s, exit code %s)", name, child.stopped_by, code)

    def _merge_perf(self, perf: Child, perf_info: dict) -> None:
        """One perf_stat.txt: the counters when perf managed, else why it did not."""
        out = perf.log_path.parent / (perf.log_path.name + ".out")
        counters = out.read_text(errors="replace") if out.is_file() else ""
        complaints = perf.log_text()
        ok = "Performance counter stats" in counters
        perf.log_path.write_text(
            counters if ok else f"perf stat produced no counters.\n{complaints}{counters}"
        )
        out.unlink(missing_ok=True)
        perf_info["counters"] = ok
        if not ok:
            perf_info["note"] = "perf stat failed (permissions? perf_event_paranoid); see " + LOGS["perf"]


class CollectError(Exception):
    """The run could not get going (the exchange never listened)."""


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _already_stopping(signum, frame):
    log.warning("already stopping: waiting for the engine and the exchange to exit")


def _set_signal(sig: signal.Signals, handler):
    """Swap a signal handler (SIGTERM stops a run like Ctrl-C); only possible on the main thread."""
    if handler is None:
        return None
    try:
        return signal.signal(sig, handler)
    except ValueError:
        return None


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _count(counts: dict, key: str) -> int:
    try:
        return int(counts.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _line_with(text: str, needle: str) -> str | None:
    """The first log line holding ``needle``, from the needle on (no timestamp/logger prefix)."""
    for line in text.splitlines():
        if needle in line:
            return line[line.index(needle) :].strip()[:200]
    return None


def _report_step(report: dict | None, error: str | None, asked: bool) -> dict:
    if not asked:
        return step(8, False, "analysis skipped (--no-analyze); run latentspeed analyze RUN_DIR")
    if report is None:
        return step(8, False, f"analysis failed: {error}")
    counts = {k: v["count"] for k, v in report["latency_us"].items()}
    ok = counts.get("tick_to_trade", 0) > 0
    return step(8, ok, f"{REPORT_FILE}: samples per stage {counts}")


def _write_manifest(run_dir: Path, manifest: dict) -> None:
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _file_list(run_dir: Path) -> list[dict]:
    return [
        {"path": p.relative_to(run_dir).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    ]
