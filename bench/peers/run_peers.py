"""Side-by-side benchmark: galprof and peer tools fit the same simulated galaxies from the same starts.

One run simulates one shared galaxy set with GalSim (bench/peers/simulate.py), writes it
to <out>/sim.npz, and fits every configuration (single Sersic + sky, bulge + disk + sky;
each image size) with galprof (float32 and float64, one batched call) and with each peer
in its own virtual environment under bench/peers/.venvs/<tool> (created on first use:
torch==2.13.0 first, then the tool, with torch pinned). Each fit runs in its own process
(bench/peers/workers/<tool>_worker.py), which times the fitting alone, measures its peak
RSS and writes a JSON of fitted values in GALFIT conventions. A markdown report
(<out>/report.md) compares throughput, accuracy and memory; see bench/peers/README.md.
``astrophot_batch`` is AstroPhot's batched LM (``ap.fit.BatchLM``), run in the astrophot
venv.

    python bench/peers/run_peers.py [--n-galaxies N] [--sizes 128 64]
        [--tools galprof galmoss pyimfit astrophot astrophot_batch] [--setup-only] [--out DIR]

Not a test: it asserts nothing and exits 0 unless the setup itself breaks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import simulate  # noqa: E402
import venvs  # noqa: E402

ALL_TOOLS = ("galprof", "galmoss", "pyimfit", "astrophot", "astrophot_batch")
REFERENCE = ("galprof", "float32")
DEVICE_TOOLS = ("galprof", "galmoss")  # the tools whose workers take --device
# tools that run in another tool's venv
VENV_OF = {"astrophot_batch": "astrophot"}
ASTROPHOT_VARIANTS = ("default", "midpoint")
ASTROPHOT_BATCH_VARIANTS = ("float32", "float64", "float32_midpoint", "float64_midpoint")


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        load = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = None
    return dict(cpu=cpu, cores=os.cpu_count(), memory_gib=None if mem is None else round(mem, 1),
                load_average_at_start=load, platform=platform.platform(), python=platform.python_version())


def variants(tool: str, args) -> list[tuple[str, list[str]]]:
    """(variant name, extra worker arguments) for each configuration of a tool."""
    if tool == "galprof":
        extra = [] if args.galprof_max_iter is None else ["--max-iter", str(args.galprof_max_iter)]
        return [("float32", extra), ("float64", extra)]
    if tool == "galmoss":
        a, b = args.galmoss_iterations
        runs = [("default", ["--max-iter", str(a)])]
        return runs if b == a else runs + [("converged", ["--max-iter", str(b)])]
    if tool == "pyimfit":
        return [("default", [])]
    if tool == "astrophot":
        extra = [] if args.astrophot_max_iter is None else ["--max-iter", str(args.astrophot_max_iter)]
        if args.astrophot_galaxies:
            extra += ["--n-fit", str(args.astrophot_galaxies)]
        return [(v, extra) for v in args.astrophot_variants]
    if tool == "astrophot_batch":
        extra = [] if args.astrophot_max_iter is None else ["--max-iter", str(args.astrophot_max_iter)]
        return [(v, extra) for v in args.astrophot_batch_variants]
    raise ValueError(tool)


def tool_python(tool: str) -> str:
    return sys.executable if tool == "galprof" else str(venvs.venv_python(VENV_OF.get(tool, tool)))


def setup(tools, log_dir: Path, wheels=None) -> dict:
    status = {}
    for tool in tools:
        if tool == "galprof":
            ok = subprocess.run([sys.executable, "-c", "import galprof"], capture_output=True).returncode == 0
            status[tool] = dict(ok=ok, message="main environment" if ok else "galprof does not import here")
            continue
        if tool in VENV_OF:
            base = VENV_OF[tool]
            if base not in status:
                status[base] = dict(zip(("ok", "message"), venvs.ensure_venv(base, log_dir, wheels)))
            ok = status[base]["ok"] and subprocess.run(
                [tool_python(tool), "-c", "import astrophot; astrophot.fit.BatchLM, astrophot.TargetImageBatch"],
                capture_output=True, cwd=venvs.VENV_ROOT).returncode == 0
            status[tool] = dict(ok=ok, message=f"{base} venv ({status[base]['message']})" if ok else
                                f"{base} venv unusable or without ap.fit.BatchLM: {status[base]['message']}")
            print(f"[setup] {tool}: {'ok' if ok else 'SKIPPED'}: {status[tool]['message']}", flush=True)
            continue
        print(f"[setup] {tool}: checking/creating {venvs.VENV_ROOT / tool} ...", flush=True)
        t0 = time.perf_counter()
        ok, msg = venvs.ensure_venv(tool, log_dir, wheels)
        status[tool] = dict(ok=ok, message=msg, seconds=round(time.perf_counter() - t0, 1))
        print(f"[setup] {tool}: {'ok' if ok else 'SKIPPED'}: {msg}", flush=True)
    return status


def run_worker(tool, variant, extra, config, data, out_dir: Path, env, timeout) -> dict:
    name = f"{tool}_{variant}_{config}"
    out_json = out_dir / "results" / f"{name}.json"
    log = out_dir / "logs" / f"{name}.log"
    cmd = [tool_python(tool), str(HERE / "workers" / f"{tool}_worker.py"), "--data", str(data), "--config", config,
           "--out", str(out_json), "--variant", variant, *extra]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=out_dir / "work",
                                timeout=timeout or None).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    if rc == 0 and out_json.exists():
        res = json.loads(out_json.read_text())
        res["process_seconds"] = wall
        return res
    tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
    return dict(tool=tool, variant=variant, config=config, failed=f"exit {rc}: " + " | ".join(tail), log=str(log))


# ----------------------------------------------------------------------------- report

def _report_params(model: str) -> list[tuple[str, str, str]]:
    """(column label, component index, kind of error)."""
    if model == "sersic":
        return [("n", "1", "n"), ("R_e", "1", "r_e"), ("mag", "1", "mag"), ("q", "1", "q"), ("PA", "1", "pa"),
                ("centre", "1", "xy")]
    return [("n_b", "1", "n"), ("R_e,b", "1", "r_e"), ("mag_b", "1", "mag"), ("q_b", "1", "q"), ("PA_b", "1", "pa"),
            ("xy_b", "1", "xy"), ("R_s,d", "2", "r_s"), ("mag_d", "2", "mag"), ("q_d", "2", "q"),
            ("PA_d", "2", "pa"), ("xy_d", "2", "xy")]


def _abs_err(kind, c, values, truth):
    if kind == "xy":
        return np.hypot(np.asarray(values[f"{c}_x"]) - truth[f"{c}_x"], np.asarray(values[f"{c}_y"]) - truth[f"{c}_y"])
    v, t = np.asarray(values[f"{c}_{kind}"], dtype=float), truth[f"{c}_{kind}"]
    if kind in ("r_e", "r_s"):
        return np.abs(v / t - 1)  # relative
    if kind == "pa":
        d = np.mod(v - t + 90.0, 180.0) - 90.0
        return np.abs(d)
    return np.abs(v - t)


def success(model, values, truth, ref_errors, noise) -> np.ndarray | None:
    """Noise-free: |dn|/n, |dR|/R < 1 %, |dmag| < 0.01. Noisy: |d| < 5 galprof errors for n, size, mag."""
    comps = [("1", ("n", "r_e", "mag"))] if model == "sersic" else [("1", ("n", "r_e", "mag")), ("2", ("r_s", "mag"))]
    n = len(truth[next(iter(truth))])
    ok = np.ones(n, dtype=bool)
    for c, names in comps:
        for name in names:
            v = np.asarray(values[f"{c}_{name}"], dtype=float)
            t = truth[f"{c}_{name}"]
            if noise > 0:
                if ref_errors is None:
                    return None
                e = np.asarray(ref_errors[f"{c}_{name}"], dtype=float)
                ok &= np.abs(v - t) < 5 * e
            elif name == "mag":
                ok &= np.abs(v - t) < 0.01
            else:
                ok &= np.abs(v / t - 1) < 0.01
    return ok


def fmt(x, digits=3):
    if x is None or not np.isfinite(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def build_report(results, sim, meta, machine, setup_status, tool_versions, args) -> tuple[str, dict]:
    lines = ["# galprof vs peers: same simulated galaxies, same starts", ""]
    lines.append(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    lines.append(f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
                 f"load average at start {machine['load_average_at_start']} ({machine['platform']})")
    lines.append(f"- galaxies per configuration: {meta['n_galaxies']}; noise sigma {meta['noise_sigma']} ADU; "
                 f"zeropoint {meta['zeropoint']}; seed {meta['seed']}; threads: "
                 f"{args.threads or 'tool defaults (all cores)'}")
    lines.append(f"- PSF: {meta['psf']['kind']} FWHM {meta['psf']['fwhm']} px, beta {meta['psf']['beta']}, "
                 f"{meta['psf']['size']}x{meta['psf']['size']} ePSF stamp ({meta['psf']['method']})")
    lines.append(f"- images: {meta['galaxy_drawing']}")
    if args.device != "cpu":
        lines.append(f"- torch device of {' and '.join(DEVICE_TOOLS)}: {args.device} (the other tools: the CPU)")
    lines.append("- versions: " + "; ".join(f"{t}: " + ", ".join(f"{k} {v}" for k, v in tool_versions.get(t, {}).items() if v)
                                           for t in tool_versions))
    for tool, st in setup_status.items():
        if not st["ok"]:
            lines.append(f"- **{tool} skipped**: {st['message']}")
    crit = ("|fit - truth| < 5 x galprof float64 error for n, R_e (R_s) and mag of every component"
            if meta["noise_sigma"] > 0 else "|dn|/n < 1 %, |dR|/R < 1 %, |dmag| < 0.01 for every component")
    lines += ["", f"Throughput: galaxies / fit wall time (fitting only; 'total' includes start-up, I/O and model "
                  f"set-up of the worker process). Ratio: throughput / galprof float32's in the same configuration. "
                  f"Reach truth: {crit}. Errors: median / worst over the galaxies; R_e and R_s relative; PA in "
                  f"degrees (mod 180); centre = distance [pix]. Peak RSS: ru_maxrss of the worker process plus that of the largest process it forked.", ""]
    summary = {}
    for cfg in meta["configs"]:
        name, model = cfg["name"], cfg["model"]
        truth = {k[len(f"{name}/truth/"):]: sim[k] for k in sim.files if k.startswith(f"{name}/truth/")}
        cfg_results = [r for r in results if r["config"] == name]
        ref = next((r for r in cfg_results if (r["tool"], r["variant"]) == REFERENCE and "failed" not in r), None)
        ref_err_src = next((r for r in cfg_results if r["tool"] == "galprof" and r["variant"] == "float64"
                            and "failed" not in r), ref)
        ref_errors = ref_err_src["errors"] if ref_err_src else None
        ref_rate = ref["n_galaxies"] / ref["fit_seconds"] if ref else None
        params = _report_params(model)
        lines.append(f"## {name} ({'single Sersic + sky' if model == 'sersic' else 'bulge (Sersic) + exp. disk + sky'}, "
                     f"{cfg['size']}x{cfg['size']})")
        lines.append("")
        head = ["tool", "variant", "gal/s", "ratio", "fit s", "total s", "reach truth", "peak RSS MiB"] + \
               [p[0] for p in params]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in cfg_results:
            key = f"{r['tool']}/{r['variant']}/{name}"
            if "failed" in r:
                lines.append(f"| {r['tool']} | {r['variant']} | failed: {r['failed'][:120]} |" + " |" * (len(head) - 3))
                summary[key] = dict(failed=r["failed"])
                continue
            nb = r["n_galaxies"]
            rate = nb / r["fit_seconds"] if r["fit_seconds"] > 0 else float("nan")
            # a tool may fit only the first nb galaxies (--astrophot-galaxies)
            truth_r = {k: v[:nb] for k, v in truth.items()}
            ref_errors_r = None if ref_errors is None else {k: np.asarray(v)[:nb] for k, v in ref_errors.items()}
            ok = success(model, r["values"], truth_r, ref_errors_r, meta["noise_sigma"])
            cells = [r["tool"], r["variant"], fmt(rate), fmt(rate / ref_rate) if ref_rate else "n/a",
                     fmt(r["fit_seconds"]), fmt(r.get("process_seconds", r["total_seconds"])),
                     "n/a" if ok is None else f"{ok.mean():.2f} ({ok.sum()}/{nb})", fmt(r["peak_rss_mib"], 4)]
            errs = {}
            for label, c, kind in params:
                e = _abs_err(kind, c, r["values"], truth_r)
                bad = int(np.sum(~np.isfinite(e)))
                med, worst = np.nanmedian(e) if np.any(np.isfinite(e)) else np.nan, np.nanmax(e) if np.any(np.isfinite(e)) else np.nan
                cells.append(f"{fmt(med)} / {fmt(worst)}" + (f" ({bad} NaN)" if bad else ""))
                errs[label] = dict(median=float(med), worst=float(worst), nan=bad)
            lines.append("| " + " | ".join(cells) + " |")
            summary[key] = dict(galaxies_per_s=rate, ratio_to_galprof_float32=(rate / ref_rate) if ref_rate else None,
                                fit_seconds=r["fit_seconds"], total_seconds=r.get("process_seconds", r["total_seconds"]),
                                reach_truth=None if ok is None else float(ok.mean()), peak_rss_mib=r["peak_rss_mib"],
                                errors=errs, settings=r.get("settings"), notes=r.get("notes"))
        lines.append("")
        rates = {(r["tool"], r["variant"]): r["n_galaxies"] / r["fit_seconds"] for r in cfg_results
                 if "failed" not in r and r["fit_seconds"] > 0}
        pairs = [(f"galprof {v}", f"astrophot_batch {b}", rates[("galprof", v)] / rates[("astrophot_batch", b)])
                 for v in ("float32", "float64") for b in (v, v + "_midpoint")
                 if ("galprof", v) in rates and ("astrophot_batch", b) in rates]
        if pairs:
            lines.append("- galprof / AstroPhot BatchLM throughput, same dtype: " +
                         "; ".join(f"{a} / {b} = {fmt(x)}x" for a, b, x in pairs))
            lines.append("")
        notes = sorted({n for r in cfg_results for n in (r.get("notes") or [])})
        for n in notes:
            lines.append(f"- note: {n}")
        if notes:
            lines.append("")
    lines.append("Settings per run: see results/*.json ('settings', 'status'); logs in logs/.")
    return "\n".join(lines) + "\n", summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-galaxies", type=int, default=100, help="galaxies per configuration (default 100)")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 64])
    p.add_argument("--models", nargs="+", default=["sersic", "bulgedisk"], choices=sorted(simulate.MODELS))
    p.add_argument("--tools", nargs="+", default=list(ALL_TOOLS), choices=ALL_TOOLS)
    p.add_argument("--setup-only", action="store_true", help="create/check the peer venvs and stop")
    p.add_argument("--out", default=None, help="output directory (default: a new temporary directory)")
    p.add_argument("--noise", type=float, default=0.1, help="Gaussian noise sigma [ADU] (0: noise-free)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--galmoss-iterations", type=int, nargs=2, default=[1000, 10000], metavar=("DEFAULT", "CONVERGED"),
                   help="galmoss iterations of its 'default' (README: 1000) and 'converged' runs "
                        "(the same number twice: the default run only)")
    p.add_argument("--astrophot-max-iter", type=int, default=None,
                   help="max_iter of ap.fit.LM and ap.fit.BatchLM (default: their own, 100)")
    p.add_argument("--astrophot-variants", nargs="+", default=list(ASTROPHOT_VARIANTS), choices=ASTROPHOT_VARIANTS,
                   help="variants of the per-galaxy AstroPhot LM (default: default midpoint)")
    p.add_argument("--astrophot-galaxies", type=int, default=None,
                   help="fit only the first N galaxies of each configuration with the per-galaxy AstroPhot LM "
                        "(default: all); its accuracy is then over those N")
    p.add_argument("--astrophot-batch-variants", nargs="+", default=["float32", "float64"],
                   choices=ASTROPHOT_BATCH_VARIANTS,
                   help="variants of AstroPhot's BatchLM (default: float32 float64, AstroPhot's sampling defaults; "
                        "*_midpoint: pixel-centre sampling)")
    p.add_argument("--galprof-max-iter", type=int, default=None, help="galprof LM max_iterations (default: its own)")
    p.add_argument("--threads", type=int, default=None,
                   help="set OMP/MKL/torch threads of every worker (default: each tool's own default)")
    p.add_argument("--timeout", type=float, default=0, help="seconds per worker run (0: none)")
    p.add_argument("--device", default="cpu",
                   help="torch device of galprof and galmoss (e.g. cuda; the other tools run on the CPU)")
    p.add_argument("--wheels", default=None,
                   help="make the peer venvs offline from this folder of wheels (bench/peers/fetch_wheels.py)")
    args = p.parse_args()

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="galprof_peers_"))
    for sub in ("results", "logs", "work"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"[peers] output: {out}\n[peers] machine: {machine['cpu']}, {machine['cores']} cores, "
          f"load {machine['load_average_at_start']}", flush=True)

    setup_status = setup(args.tools, out / "logs", args.wheels)
    tool_versions = {}
    for tool in args.tools:
        if setup_status[tool]["ok"]:
            tool_versions[tool] = (venvs.versions(VENV_OF.get(tool, tool)) if tool != "galprof" else
                                   json.loads(subprocess.run([sys.executable, "-c",
                                       "import json, importlib.metadata as m; print(json.dumps({d: m.version(d) "
                                       "for d in ('galprof', 'torch', 'numpy', 'galsim')}))"],
                                       capture_output=True, text=True).stdout or "{}"))
    (out / "setup.json").write_text(json.dumps(dict(setup=setup_status, versions=tool_versions), indent=1))
    if args.setup_only:
        for tool, st in setup_status.items():
            print(f"{tool}: {'ok' if st['ok'] else 'SKIPPED'}  {st['message']}  {tool_versions.get(tool, '')}")
        return

    configs = [(m, s) for m in args.models for s in args.sizes]
    print(f"[peers] simulating {args.n_galaxies} galaxies x {len(configs)} configurations with GalSim ...", flush=True)
    t0 = time.perf_counter()
    arrays = simulate.simulate(configs, args.n_galaxies, args.noise, args.seed)
    data = out / "sim.npz"
    simulate.write(data, arrays)
    print(f"[peers] wrote {data} ({time.perf_counter() - t0:.1f} s)", flush=True)

    env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    if args.threads:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(args.threads)
    results = []
    for model, size in configs:
        config = f"{model}_{size}"
        for tool in args.tools:
            if not setup_status[tool]["ok"]:
                continue
            for variant, extra in variants(tool, args):
                if tool in DEVICE_TOOLS and args.device != "cpu":
                    extra = [*extra, "--device", args.device]
                print(f"[peers] {config}: {tool} ({variant}) ...", end=" ", flush=True)
                r = run_worker(tool, variant, extra, config, data, out, env, args.timeout)
                results.append(r)
                if "failed" in r:
                    print(f"FAILED ({r['failed'][:200]})", flush=True)
                else:
                    print(f"{r['n_galaxies'] / r['fit_seconds']:.3g} gal/s, fit {r['fit_seconds']:.1f} s, "
                          f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)

    sim = np.load(data)
    meta = json.loads(str(sim["meta"]))
    report, summary = build_report(results, sim, meta, machine, setup_status, tool_versions, args)
    (out / "report.md").write_text(report)
    (out / "summary.json").write_text(json.dumps(dict(machine=machine, setup=setup_status, versions=tool_versions,
                                                      meta=meta, results=summary), indent=1, default=str))
    print()
    print(report)
    print(f"[peers] report: {out / 'report.md'}; per-run JSON: {out / 'results'}")


if __name__ == "__main__":
    main()
