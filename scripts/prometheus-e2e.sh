#!/usr/bin/env bash
# End-to-end check of leakguard's Prometheus output against Debian's real
# servers: prometheus_test (PrometheusE2E.*) writes a textfile and serves
# /metrics on loopback; prometheus-node-exporter reads the textfile with its
# textfile collector; prometheus scrapes both; PromQL queries through
# Prometheus' HTTP API must return leakguard's series with the values the
# test wrote.
#
#   scripts/prometheus-e2e.sh build/gcc/tests/prometheus_test
#
# Exit codes: 0 passed, 1 failed, 77 skipped (only when the prometheus or
# prometheus-node-exporter binaries are absent; scripts/setup installs them).
set -euo pipefail

test_binary=${1:?usage: prometheus-e2e.sh PATH/TO/prometheus_test}
python=${LEAKGUARD_PYTHON:-/usr/bin/python3}
prometheus=$(command -v prometheus || true)
node_exporter=$(command -v prometheus-node-exporter || command -v node_exporter || true)
if [[ -z "$prometheus" || -z "$node_exporter" ]]; then
  echo "SKIP: prometheus or prometheus-node-exporter is not installed (scripts/setup installs both)"
  exit 77
fi

work=$(mktemp -d /tmp/leakguard-prom-e2e.XXXXXX)
pids=()
cleanup() {
  touch "$work/done"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/textfile" "$work/tsdb"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_get URL [QUERY]: the body of a 200 answer on stdout (QUERY is sent
# URL-encoded as ?query=...); fails otherwise. Python's urllib, so the script
# needs nothing beyond the servers under test.
http_get() {
  "$python" - "$@" <<'PY'
import sys, urllib.parse, urllib.request
url = sys.argv[1]
if len(sys.argv) > 2:
    url += "?" + urllib.parse.urlencode({"query": sys.argv[2]})
with urllib.request.urlopen(url, timeout=10) as answer:
    sys.stdout.write(answer.read().decode())
PY
}

fail() {
  echo "FAIL: $*"
  for log in "$work"/*.log; do
    echo "--- $log"
    tail -n 30 "$log"
  done
  exit 1
}

# Wait (up to $2 seconds) until the command in $3... succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.2
  done
}

# 1. leakguard: the textfile and the in-process endpoint.
LEAKGUARD_E2E_DIR=$work "$test_binary" --gtest_filter='PrometheusE2E.*' >"$work/leakguard.log" 2>&1 &
test_pid=$!
pids+=("$test_pid")
wait_for "leakguard's port file" 60 test -s "$work/port"
leakguard_port=$(cat "$work/port")
test -s "$work/textfile/leakguard.prom" || fail "no textfile written"

# 2. node_exporter with only its textfile collector.
node_port=$(free_port)
"$node_exporter" --web.listen-address="127.0.0.1:$node_port" \
  --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$work/textfile" >"$work/node_exporter.log" 2>&1 &
pids+=("$!")
wait_for "node_exporter" 60 http_get "http://127.0.0.1:$node_port/metrics"

# 3. prometheus scraping both every second.
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$node_port']
  - job_name: leakguard
    static_configs:
      - targets: ['127.0.0.1:$leakguard_port']
EOF
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=("$!")
wait_for "prometheus" 90 http_get "http://127.0.0.1:$prom_port/-/ready"

# query PROMQL EXPECTED: waits until the instant query returns exactly one
# series whose value is EXPECTED; prints the series.
query() {
  local promql=$1 expected=$2
  local deadline=$((SECONDS + 120)) answer
  while true; do
    answer=$(http_get "http://127.0.0.1:$prom_port/api/v1/query" "$promql" 2>/dev/null || true)
    if [[ -n "$answer" ]] && "$python" - "$expected" "$answer" <<'PY'
import json, sys
expected, answer = sys.argv[1], json.loads(sys.argv[2])
result = answer["data"]["result"]
if answer["status"] != "success" or len(result) != 1 or result[0]["value"][1] != expected:
    sys.exit(1)
print(json.dumps(result[0]["metric"], sort_keys=True), result[0]["value"][1])
PY
    then
      return 0
    fi
    ((SECONDS < deadline)) || fail "query $promql: wanted one series = $expected, last answer: $answer"
    sleep 0.5
  done
}

echo "prometheus on 127.0.0.1:$prom_port, node_exporter :$node_port, leakguard :$leakguard_port"
for job in node leakguard; do
  query "leakguard_growth_bytes{job=\"$job\",host_role=\"e2e\",watcher=\"leak_detector\",source=\"python\"}" 1048576
  query "leakguard_growth_bytes_per_second{job=\"$job\",source=\"native\"}" 1048576
  query "leakguard_leak_suspected{job=\"$job\",cause=\"native_memory\"}" 1
  query "sum(leakguard_leak_suspected{job=\"$job\"})" 1
  query "leakguard_site_growth_bytes{job=\"$job\",file=\"lib/\\\"quoted\\\".py\",line=\"7\"}" 300000
  query "count(leakguard_site_growth_bytes{job=\"$job\"})" 3
  query "count(leakguard_rss_bytes{job=\"$job\"} > 1000000)" 1
done
# node_exporter parsed the textfile without error.
query 'node_textfile_scrape_error{job="node"}' 0

touch "$work/done"
wait "$test_pid" || fail "prometheus_test PrometheusE2E failed"
pids=("${pids[@]:1}")
echo "PASS: Prometheus returned leakguard's series from node_exporter's textfile and from /metrics"
