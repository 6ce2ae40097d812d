# The PostgreSQL peer of bench/search.sh: the corpus Veche serves, loaded into a
# PostgreSQL this script starts (Debian's packages, PostGIS included), with the schema a
# competent engineer would write for it (a GIN full-text index with the `russian`
# configuration, which stems Latin words with the English stemmer, a GiST index of
# PostGIS points, B-trees in start order), asked the same queries with pgbench: the
# database alone, no HTTP in front. Source it after bench/lib.sh; it defines functions.

PG_VERSION=${PG_VERSION:-15}
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin

# Installs PostgreSQL and PostGIS from Debian if missing.
pg_ensure() {
    source scripts/debian.sh
    need_debian "$PG_BIN/postgres" "postgresql-$PG_VERSION"
    need_debian /usr/bin/pgbench "postgresql-client-$PG_VERSION"
    need_debian "/usr/share/postgresql/$PG_VERSION/extension/postgis.control" "postgresql-$PG_VERSION-postgis-3"
}

# Runs a command as the owner of the cluster: PostgreSQL refuses to run as root.
pg_as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pg_start DIR PORT: a new cluster in DIR (created), listening on loopback only. Settings
# as a deployment on this machine would have them: a quarter of the memory for shared
# buffers (capped at 4 GiB), no JIT (it costs more than it saves on short queries).
pg_start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres "$dir"
    pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    local memory_mib
    memory_mib=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    local shared=$((memory_mib / 4 > 4096 ? 4096 : memory_mib / 4))
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_buffers = ${shared}MB
effective_cache_size = $((memory_mib / 2))MB
work_mem = 16MB
maintenance_work_mem = 1GB
jit = off
synchronous_commit = off
max_wal_size = 8GB
EOF
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
        bench_die "PostgreSQL did not start (see $dir/server.log)"
}

pg_stop() {
    local dir=$1
    [[ -d $dir/data ]] && pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    return 0
}

pg_psql() {
    local port=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# pg_load PORT EVENTS_DB DIR: copies the events of Veche's SQLite file into PostgreSQL
# (through a CSV file in DIR), then builds the indexes and statistics.
pg_load() {
    local port=$1 db=$2 dir=$3
    python3 - "$db" "$dir/events.csv" <<'EOF'
import csv, json, sqlite3, sys
source, target = sys.argv[1], sys.argv[2]
rows = sqlite3.connect(f"file:{source}?mode=ro", uri=True).execute(
    "SELECT id, organization_id, title, doc, status, visibility, start_at, end_at, city_key, "
    "latitude, longitude, category, format, is_free, registered_count FROM events")
with open(target, "w", newline="") as out:
    w = csv.writer(out)
    for (id, org, title, doc, status, visibility, start, end, city, lat, lon, category, fmt, free, registered) in rows:
        tags = json.loads(doc).get("tags", [])
        point = f"SRID=4326;POINT({lon} {lat})" if lat is not None and lon is not None else None
        w.writerow([id, org, title, json.loads(doc).get("description", ""), "{" + ",".join(tags) + "}",
                    " ".join(tags), category, city, fmt, "t" if free else "f", status, visibility,
                    start, end, registered, point])
EOF
    [[ $(id -u) == 0 ]] && chmod a+r "$dir/events.csv"
    pg_psql "$port" <<EOF
CREATE EXTENSION postgis;
CREATE TABLE events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    title            text NOT NULL,
    description      text NOT NULL,
    tags             text[] NOT NULL,
    tag_text         text NOT NULL,
    category         text,
    city             text,          -- lower-cased
    format           text NOT NULL,
    is_free          boolean NOT NULL,
    status           text NOT NULL,
    visibility       text NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL,
    registered_count integer NOT NULL,
    location         geography(Point, 4326),
    search           tsvector GENERATED ALWAYS AS
                     (to_tsvector('russian'::regconfig, title || ' ' || description || ' ' || tag_text)) STORED
);
CREATE TEMP TABLE staging (id uuid, organization_id uuid, title text, description text, tags text[],
    tag_text text, category text, city text, format text, is_free boolean, status text, visibility text,
    start_at bigint, end_at bigint, registered_count integer, location geography(Point, 4326));
\copy staging FROM '$dir/events.csv' WITH (FORMAT csv)
INSERT INTO events (id, organization_id, title, description, tags, tag_text, category, city, format, is_free,
    status, visibility, start_at, end_at, registered_count, location)
SELECT id, organization_id, title, coalesce(description, ''), tags, coalesce(tag_text, ''), category, city,
    format, is_free, status, visibility, to_timestamp(start_at), to_timestamp(end_at), registered_count, location FROM staging;
CREATE INDEX events_search ON events USING gin (search);
CREATE INDEX events_listed ON events (start_at) WHERE status = 'published' AND visibility = 'public';
CREATE INDEX events_by_city ON events (city, start_at);
CREATE INDEX events_by_category ON events (category, start_at);
CREATE INDEX events_by_organization ON events (organization_id, start_at);
CREATE INDEX events_by_popularity ON events (registered_count DESC, id)
    WHERE status = 'published' AND visibility = 'public';
CREATE INDEX events_by_tags ON events USING gin (tags);
CREATE INDEX events_by_location ON events USING gist (location);
VACUUM ANALYZE events;
EOF
}

# pg_query ROW: the SQL of one of bench/search.sh's rows (the same parameters), with
# WEEK_FROM, WEEK_TO and SAMPLE set by the caller.
pg_query() {
    local listed="status = 'published' AND visibility = 'public'"
    local upcoming="$listed AND end_at >= now()"
    # Veche's default page, 50, and one more to tell whether another follows; the columns
    # of an event, not the text index's vector.
    local page="ORDER BY start_at, id LIMIT 51"
    local columns="id, organization_id, title, description, tags, category, city, format, is_free, status, visibility, start_at, end_at, registered_count, location"
    case $1 in
    "full text + filters")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', 'джаз') AND city = 'kazan' AND category = 'concert' $page" ;;
    "full text, rare word")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', '4242') $page" ;;
    "date range (a week)")
        echo "SELECT $columns FROM events WHERE $listed AND end_at >= '$WEEK_FROM' AND start_at < '$WEEK_TO' $page" ;;
    "geo (5 km radius)")
        echo "SELECT $columns FROM events WHERE $upcoming AND ST_DWithin(location, ST_MakePoint(49.12, 55.79)::geography, 5000) $page" ;;
    "tags + free")
        echo "SELECT $columns FROM events WHERE $upcoming AND tags @> ARRAY['music', 'kids'] AND is_free $page" ;;
    "popularity")
        echo "SELECT $columns FROM events WHERE $upcoming ORDER BY registered_count DESC, id LIMIT 51" ;;
    "very common word")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', 'open') $page" ;;
    "very common word + city")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', 'open') AND city = 'moscow' $page" ;;
    "very common word, by relevance")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', 'open') ORDER BY ts_rank(search, plainto_tsquery('russian', 'open')) DESC, id LIMIT 51" ;;
    "very common word + city, by relevance")
        echo "SELECT $columns FROM events WHERE $upcoming AND search @@ plainto_tsquery('russian', 'open') AND city = 'moscow' ORDER BY ts_rank(search, plainto_tsquery('russian', 'open')) DESC, id LIMIT 51" ;;
    "GET /events/{id} (baseline)")
        echo "SELECT $columns FROM events WHERE id = '$SAMPLE'" ;;
    *) bench_die "no PostgreSQL query for row: $1" ;;
    esac
}

# pg_bench PORT DIR SQL: runs SQL with pgbench (CONNECTIONS clients, two threads,
# DURATION seconds) and prints "transactions/s p50_ms p99_ms rows" (rows: of one run).
pg_bench() {
    local port=$1 dir=$2 sql=$3 rows
    rows=$(pg_psql "$port" -At -c "SELECT count(*) FROM ($sql) q")
    echo "$sql;" >"$dir/query.sql"
    rm -f "$dir"/pgbench_log.*
    local out
    out=$(cd "$dir" && pgbench -n -h 127.0.0.1 -p "$port" -U postgres -c "$CONNECTIONS" -j 2 -T "$DURATION" \
        -f query.sql --log --log-prefix=pgbench_log postgres 2>&1) || bench_die "pgbench failed: $out"
    local tps
    tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
    # Each log line: client, transaction, latency in microseconds, ...
    cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n | awk -v tps="$tps" -v rows="$rows" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "no transactions" > "/dev/stderr"; exit 1 }
            p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
            printf "%s %.2f %.2f %s\n", tps, p50 / 1000, p99 / 1000, rows
        }'
}
