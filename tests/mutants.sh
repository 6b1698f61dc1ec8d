#!/usr/bin/env bash
# Mutation testing of the Rust core (issue 15): would the tests notice a broken grow, buddy allocator,
# grow/claim protocol, deferred pass or invariant checker?
#
#   tests/mutants.sh [--cargo-only|--python-only] [FILE ...]   (default FILEs: src/buddy.rs src/protocol.rs
#                                                              src/deferred.rs src/check.rs)
#
# Phase 1: cargo-mutants (`cargo install cargo-mutants`) mutates FILE and runs the cargo tests (unit,
#          tests/core.rs, tests/stress.rs) against each mutant, one job at a time, at nice 19.
# Phase 2: every mutant that phase 1 missed is applied to a scratch copy of the tree, built into the
#          Python extension, and run against the Python differential and regression tests. A mutant
#          caught there is caught by the combined suites.
# Output per FILE under target/mutants/<file stem>/: cargo-mutants' mutants.out/ and python.txt (one
# line per phase-1 survivor: caught-by-python or MISSED, and the mutant). Timeouts count as not caught.
# Environment: MUTANTS_TIMEOUT (seconds per test run, default 180), MUTANTS_JOBS (default 1),
# MUTANTS_SHARD (e.g. 1/4: run a shard of each file's mutants), MUTANTS_ITERATE=1 (re-test only what
# the previous run in the same output directory did not catch, e.g. after adding tests),
# PGDEFER_STRESS_RUNS (default 100 here).
# A full run on 2 cores takes hours: run it per file, in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cargo_only=0
python_only=0
if [[ ${1:-} == --cargo-only ]]; then
    cargo_only=1
    shift
elif [[ ${1:-} == --python-only ]]; then  # phase 2 only, on the survivors of an earlier phase 1
    python_only=1
    shift
fi
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,20p' "$0"
    exit 0
fi
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(src/buddy.rs src/protocol.rs src/deferred.rs src/check.rs)
for f in "${files[@]}"; do
    [[ -f $f ]] || { echo "mutants.sh: no such file: $f" >&2; exit 2; }
done
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants.sh: cargo-mutants is not installed: cargo install cargo-mutants" >&2
    exit 2
fi
export PGDEFER_STRESS_RUNS=${PGDEFER_STRESS_RUNS:-100}
timeout=${MUTANTS_TIMEOUT:-180}
jobs=${MUTANTS_JOBS:-1}
shard=()
[[ -n ${MUTANTS_SHARD:-} ]] && shard=(--shard "$MUTANTS_SHARD")
[[ -n ${MUTANTS_ITERATE:-} ]] && shard+=(--iterate)
PY_TESTS=(tests/test_differential.py tests/test_regressions.py tests/test_concurrency.py tests/test_machine.py
          tests/test_generations.py tests/test_core_facts.py)
EXT=$(python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

for f in "${files[@]}"; do
    out=target/mutants/$(basename "$f" .rs)
    mkdir -p "$out"
    echo "== $f: cargo-mutants with the cargo tests (output in $out/mutants.out) =="
    # Exit status 2 = some mutants survived, 3 = timeouts: both are results, not failures of the script.
    [[ $python_only -eq 1 ]] || nice -n 19 cargo mutants --file "$f" --jobs "$jobs" --timeout "$timeout" --profile mutants \
        --cap-lints true --baseline skip "${shard[@]}" --output "$out" || { rc=$?; [[ $rc -eq 2 || $rc -eq 3 ]]; }
    missed=$out/mutants.out/missed.txt
    [[ -s $missed && $cargo_only -eq 0 ]] || continue
    echo "== $f: $(wc -l <"$missed") survivor(s) against the Python tests =="
    scratch=target/mutants/scratch
    : >"$out/python.txt"
    while IFS= read -r mutant; do
        rm -rf "$scratch/tree" && mkdir -p "$scratch/tree"
        tar -C "$ROOT" --exclude=./target --exclude=./.venv --exclude=./.git -cf - . | tar -C "$scratch/tree" -xf -
        # The mutant's diff, from cargo-mutants' list of mutants (paths relative to the tree: -p0).
        python -c 'import json, sys
print(next(m["diff"] for m in json.load(open(sys.argv[1])) if m["name"] == sys.argv[2]), end="")' \
            "$out/mutants.out/mutants.json" "$mutant" | (cd "$scratch/tree" && patch -s -p0)
        if ! (cd "$scratch/tree" && CARGO_TARGET_DIR=$ROOT/$scratch/target nice -n 19 \
                cargo build -q --profile mutants --lib --features python 2>/dev/null); then
            echo "unviable-with-python  $mutant" >>"$out/python.txt"
            continue
        fi
        cp "$scratch/target/mutants/libpgdefer.so" "$scratch/tree/python/pgdefer/_core$EXT"
        if PYTHONPATH=$ROOT/$scratch/tree/python timeout "$((timeout * 5))" nice -n 19 \
                python -m pytest -q -x -p no:cacheprovider "${PY_TESTS[@]}" >/dev/null 2>&1; then
            echo "MISSED                $mutant" | tee -a "$out/python.txt"
        else
            echo "caught-by-python      $mutant" | tee -a "$out/python.txt"
        fi
    done <"$missed"
done
for f in "${files[@]}"; do
    o=target/mutants/$(basename "$f" .rs)/mutants.out
    [[ -d $o ]] || continue
    n() { if [[ -f $o/$1.txt ]]; then wc -l <"$o/$1.txt"; else echo 0; fi; }
    py=0
    [[ -f target/mutants/$(basename "$f" .rs)/python.txt ]] && py=$(grep -c '^caught-by-python' "target/mutants/$(basename "$f" .rs)/python.txt" || true)
    caught=$(( $(n caught) + py ))
    viable=$(( $(n caught) + $(n missed) + $(n timeout) ))
    echo "$f: $viable viable mutants: $(n caught) caught by cargo tests, $py more by the Python tests," \
         "$(( $(n missed) - py )) missed, $(n timeout) timeouts, $(n unviable) unviable;" \
         "caught $(( viable ? 100 * caught / viable : 0 ))%"
done
