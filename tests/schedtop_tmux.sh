#!/bin/bash
# tests/schedtop_tmux.sh SCHEDTOP DEMO — the live view in a real terminal:
# tmux runs `schedtop PID` against schedtop_demo (a real runtime, 2 hubs),
# capture-pane must show the header and one row per hub, and `q` (send-keys)
# must end it with status 0.  Fails on any missing piece; skips (77) only
# when tmux is not installed.
set -u
tool=$1 demo=$2
command -v tmux >/dev/null || { echo "tmux not installed: skipped"; exit 77; }
sock=gh-schedtop-test-$$
tmuxc() { tmux -L "$sock" -f /dev/null "$@"; }
fail() { echo "FAIL: $*"; echo "--- pane:"; cat "$pane" 2>/dev/null; exit 1; }
pane=$(mktemp)
GREENHUB_HUBS=2 GREENHUB_PIN=0 "$demo" 20 400 >/dev/null &
dpid=$!
trap 'kill $dpid 2>/dev/null; tmuxc kill-server 2>/dev/null; rm -f "$pane" "$pane.st"' EXIT
for _ in $(seq 100); do [ -e /dev/shm/greenhub.$dpid ] && break; sleep 0.05; done
[ -e /dev/shm/greenhub.$dpid ] || fail "the demo published no segment"
tmuxc new-session -d -x 132 -y 40 "TERM=xterm $tool $dpid; echo \$? > $pane.st" ||
    fail "tmux could not start"
ok=0
for _ in $(seq 50); do          # the first frame, then one with rates
    sleep 0.1
    tmuxc capture-pane -p > "$pane" 2>/dev/null || continue
    if grep -q "pid $dpid" "$pane" && grep -qE '^ +0 +[0-9-]+ +[a-z]+ ' "$pane" &&
       grep -qE '^ +1 +[0-9-]+ +[a-z]+ ' "$pane" && grep -q '^all ' "$pane"; then
        ok=1; break
    fi
done
[ $ok = 1 ] || fail "no header, hub 0 and hub 1 rows and totals on screen"
[ "$(grep -cE '^ +[0-9]+ +[0-9-]+ +(running|searching|sleeping|blocked|stopped) ' "$pane")" = 2 ] ||
    fail "not exactly one row per hub"
tmuxc send-keys q
for _ in $(seq 50); do [ -s "$pane.st" ] && break; sleep 0.1; done
[ -s "$pane.st" ] || fail "schedtop did not quit on q"
[ "$(cat "$pane.st")" = 0 ] || fail "schedtop exited with $(cat "$pane.st") on q"
echo "ok: one row per hub, quit on q"
