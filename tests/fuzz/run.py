"""The long fuzz run: the properties of tests/fuzz (drive.py, plus jsonobj's RFC 8259
reference) on many generated and mutated inputs, under CPython, on every core.

    .venv/bin/python tests/fuzz/run.py [--inputs N] [--seed S] [--jobs J] [DRIVER ...]

N inputs per driver (default 200000: 1.4 million for the seven). Prints a line per
driver: inputs tried, taken (objects jsonobj returned, streams that gave requests or
frames, replies, decoded broadcasts), failures. The first failing inputs of each driver
are added to tests/firmware/corpus/DRIVER.txt, where tests/fuzz/test_fuzz_corpus.py
replays it under CPython and on the MicroPython VM (and tests/test_json_differential.py
compares jsonobj's on both). Exit status 1 when anything failed.

    .venv/bin/python tests/fuzz/run.py --seed-corpus K [DRIVER ...]

adds K fuzz inputs per driver to its corpus (how it was seeded): for jsonobj, near
misses: mutations of valid objects, half of them still valid.
"""
import argparse
import multiprocessing
import os
import random
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import props  # noqa: E402

CHUNK = 2000  # inputs per task: small enough to spread over the cores evenly
SAVED = 5  # failing inputs saved to the corpus (and shown) per driver


def _work(task):
    name, seed, count = task
    rng = random.Random(seed)
    corpus = props.read_corpus(name)
    taken = 0
    failures = []
    for _ in range(count):
        data = props.fuzz_input(rng, name, corpus)
        try:
            got = props.check(name, data)
        except Exception as e:
            failures.append((data, "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200] if str(e) else ""),
                             traceback.format_exc()))
            continue
        taken += bool(got.done if name == "esptouch" else got[0] if isinstance(got, tuple) else got)
    return name, count, taken, failures


def run(names, inputs, seed, jobs):
    tasks = []
    for k, name in enumerate(names):
        for start in range(0, inputs, CHUNK):
            tasks.append((name, seed * 1000003 + k * 10007 + start, min(CHUNK, inputs - start)))
    totals = {name: [0, 0, 0] for name in names}
    t0 = time.monotonic()
    with multiprocessing.Pool(jobs) as pool:
        for name, count, taken, failures in pool.imap_unordered(_work, tasks):
            total = totals[name]
            total[0] += count
            total[1] += taken
            for data, what, tb in failures:
                total[2] += 1
                if total[2] <= SAVED:  # the first few tell; the count says how many more
                    props.add_to_corpus(name, data, "run.py --seed %d: %s" % (seed, what[:100]))
                    print("FAIL %s %s\n  input %r\n%s" % (name, what, data[:300], tb), flush=True)
    elapsed = time.monotonic() - t0
    print("%-15s %10s %10s %9s" % ("driver", "inputs", "taken", "failures"))
    for name in names:
        count, taken, failed = totals[name]
        print("%-15s %10d %10d %9d" % (name, count, taken, failed))
    count = sum(t[0] for t in totals.values())
    failed = sum(t[2] for t in totals.values())
    print("%d inputs in %.0f s (%.0f/s on %d processes), %d failed" % (count, elapsed, count / elapsed, jobs, failed))
    if failed:
        print("the first failing inputs are now in %s/DRIVER.txt" % props.CORPUS)
    return failed


def seed_corpus(names, k, seed):
    for name in names:
        rng = random.Random(seed)
        corpus = props.read_corpus(name)
        added = []
        valid = 0
        while len(added) < k:
            if name == "jsonobj":  # near misses: half still valid, half not
                data = props.mutate(rng, props.gen_json(rng))
                ok = props.reference(data)[0]
                if (valid if ok else len(added) - valid) >= (k + 1) // 2 or len(data) > 400:
                    continue
            else:
                data, ok = props.fuzz_input(rng, name), False
            if data not in corpus and data not in added:
                added.append(data)
                valid += ok
        props.CORPUS.mkdir(parents=True, exist_ok=True)
        with open(props.CORPUS / f"{name}.txt", "a") as f:
            f.write("# from run.py --seed-corpus %d --seed %d\n" % (k, seed))
            f.writelines(props.corpus_line(data) for data in added)
        print("%s: %d added" % (name, k))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("drivers", nargs="*", help="default: all of %s" % ", ".join(props.GENERATORS))
    ap.add_argument("--inputs", type=int, default=200000, help="inputs per driver (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="default: the time")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: the cores, %(default)s)")
    ap.add_argument("--seed-corpus", type=int, metavar="K", help="add K inputs per driver to the corpus, then stop")
    args = ap.parse_args()
    names = args.drivers or list(props.GENERATORS)
    for name in names:
        if name not in props.GENERATORS:
            ap.error("no driver %r" % name)
    if args.seed_corpus:
        seed_corpus(names, args.seed_corpus, args.seed)
        return 0
    print("fuzzing %s: %d inputs each, seed %d, %d processes" % (", ".join(names), args.inputs, args.seed, args.jobs),
          flush=True)
    return 1 if run(names, args.inputs, args.seed, args.jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
