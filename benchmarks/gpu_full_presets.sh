#!/usr/bin/env bash
# The learning check with the full presets on one GPU: one process per model, all at once
# (the models together use a fraction of an H200; each process gets its own CPU threads
# for loading and scoring). Each model writes OUT/<model>.json and OUT/<model>.log.
#
#   benchmarks/gpu_full_presets.sh STORE MOUTH_STORE CNN3D_STORE OUT MINUTES [learning_check args]
#
# STORE: the default prepare (face crops; lip2wav). MOUTH_STORE: a mouth store for vcagan,
# gabor and gaborpic (preprocess.mouth_preset: vcagan). CNN3D_STORE: the cnn3d mouth
# preset with MFEC (avsync, in its `grid` preset: the published net at GRID's 25 fps;
# AVSYNC_SIZE overrides). Budget: MINUTES of wall time per model (--clock wall), then
# scoring. PYTHON (default python3) runs it; THREADS (default 3) torch threads per model.
set -u
if [ $# -lt 5 ]; then
    sed -n 2,13p "$0" >&2
    exit 2
fi
store=$1 mouth=$2 cnn3d=$3 out=$4 minutes=$5
shift 5
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
check() {
    local name=$1 path=$2 size=$3
    shift 3
    "${PYTHON:-python3}" "$here/learning_check.py" --store "$path" --models "$name" \
        --size "$size" --device cuda --clock wall --threads "${THREADS:-3}" \
        --minutes-per-model "$minutes" --json "$out/$name.json" "$@" >"$out/$name.log" 2>&1
    echo "$name: exit $?"
}
check lip2wav "$store" full "$@" &
check vcagan "$mouth" full "$@" &
check gabor "$mouth" full "$@" &
check gaborpic "$mouth" full "$@" &
check avsync "$cnn3d" "${AVSYNC_SIZE:-grid}" "$@" &
wait
