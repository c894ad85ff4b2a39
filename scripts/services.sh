#!/usr/bin/env bash
# Makes sure the test services run: PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
# Starts them when they are installed but down; exits non-zero (never skips) when they cannot be had.
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  if [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "services: starting Redis"
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi

ok=0
pg_up || { echo "services: PostgreSQL is required on 127.0.0.1:5432 and could not be started" >&2; ok=1; }
redis_up || { echo "services: Redis is required on 127.0.0.1:6379 and could not be started" >&2; ok=1; }
[ $ok -eq 0 ] && echo "services: PostgreSQL and Redis are up"
exit $ok
