# Shared by the demo and benchmark scripts: a throwaway PostgreSQL 15 cluster.
# pg_up DIR [NETNS ADDR] : initdb + start (listening on ADDR inside NETNS, or loopback)
# pg_down DIR
PG_BIN=/usr/lib/postgresql/15/bin
pg_up() {
  local dir=$1 ns=${2:-} addr=${3:-127.0.0.1}
  rm -rf "$dir"; mkdir -p "$dir"; chown postgres:postgres "$dir"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
  printf 'local all all trust\nhost all all all scram-sha-256\n' > "$dir/pg_hba.conf"
  local start=("$PG_BIN/pg_ctl" -D "$dir" -o "-c listen_addresses=$addr -p 5432 -k $dir ${PG_OPTS:-}" -w -l "$dir/log" start)
  if [ -n "$ns" ]; then
    ip netns exec "$ns" runuser -u postgres -- "${start[@]}" >/dev/null
  else
    runuser -u postgres -- "${start[@]}" >/dev/null
  fi
}
pg_sql() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$1" -U postgres -d "${3:-postgres}" -c "$2"; }
pg_down() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$1"; }
