#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, seeded from ../shared/corpus, and prints
# the executions and findings per target. RUNS=N stops a target after N executions instead
# (SECONDS still caps it); TARGETS="formula event" picks targets. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Crashes land in fuzz/artifacts/<target>/; each becomes a test.
set -euo pipefail
cd "$(dirname "$0")"
cargo +nightly fuzz --version >/dev/null 2>&1 || {
  echo "run.sh: needs cargo-fuzz and the nightly toolchain: cargo install cargo-fuzz; rustup toolchain install nightly" >&2
  exit 2
}
seconds=${1:-60}
corpus=../../shared/corpus
mkdir -p seeds/formula seeds/event seeds/manifest seeds/archive seeds/upload_archive seeds/loose_stored seeds/loose_object seeds/branch_splice
cp -f "$corpus"/formulas/* seeds/formula/ 2>/dev/null || true
cp -f "$corpus"/messages/*.json "$corpus"/messages/modern/*.json seeds/event/ 2>/dev/null || true
cp -f ../examples/tasks/*/runtask.yml seeds/formula/ 2>/dev/null || true
# An upload-archive answer as git daemon sends it: ACK, flush, a side-band-1 packet, flush.
printf '0008ACK\n0000000a\001hello0000' > seeds/upload_archive/ack
# A loose blob stored uncompressed (stored blocks, as taskhook writes large blobs), and one
# compressed by zlib.
python3 - <<'PY'
import zlib
body = b"".join(b'    {"path":"t%05d","desc":"task %d"},\n' % (i, i) for i in range(600))
stream = b"blob %d\0" % len(body) + body
open("seeds/loose_stored/stored", "wb").write(zlib.compress(stream, 0))
open("seeds/loose_stored/whole", "wb").write(zlib.compress(stream, 1))
# A stored manifest of 40 tasks, a push replacing, removing and adding a few, no damage.
open("seeds/branch_splice/push", "wb").write(bytes([40, 1, 3, 0, 7, 2, 99, 1, 20]))
# Loose objects of each kind, as git writes them (level 1) and as taskhook does (stored).
for kind, body in [(b"blob", b"hello\n"), (b"tree", b"100644 a\0" + bytes(20)),
                   (b"commit", b"tree " + b"0" * 40 + b"\n\nm\n")]:
    stream = kind + b" %d\0" % len(body) + body
    open("seeds/loose_object/" + kind.decode(), "wb").write(zlib.compress(stream, 1))
    open("seeds/loose_object/" + kind.decode() + "-stored", "wb").write(zlib.compress(stream, 0))
PY
for target in ${TARGETS:-formula event manifest archive upload_archive loose_stored loose_object branch_splice}; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  start=$(date +%s)
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" ${RUNS:+-runs="$RUNS"} -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 >"$log" 2>&1 || true
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  crashes=$(ls "artifacts/$target" 2>/dev/null | wc -l)
  echo "$target: ${execs:-?} executions in ${took}s (build included), ${crashes} crash artifacts"
  rm -f "$log"
done
