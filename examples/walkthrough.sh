#!/usr/bin/env bash
# A walk through the Veche API with curl, against a running `veche up`:
#
#   1. an organizer and a member sign up and log in
#   2. the organizer starts an organization and invites the member by email
#   3. the member reads the invitation mail and accepts it
#   4. the organizer (the organization's owner, so an admin of it) creates an event and
#      publishes it
#   5. anyone finds it by searching, without signing in
#   6. the member registers for it, and anyone fetches it as iCalendar (.ics)
#
# Start the platform in another terminal, then run this from the same directory:
#
#   cargo run --release -p veche -- up
#   examples/walkthrough.sh
#
# Settings (environment):
#   VECHE_URL        where the platform listens          (default http://127.0.0.1:8080)
#   VECHE_DATA_DIR   the data directory of that server    (default ./veche-data); without
#                    SMTP, `veche up` writes mail as text files under <data dir>/mail/,
#                    which is where this script reads the invitation link
#   MAIL_WAIT        seconds to wait for a mail           (default 10)
#   WALKTHROUGH_JSON jq or python3, to force the JSON reader (default: jq when installed)
#
# Every run signs up new people (their addresses carry a run id), so it can run again and
# again against the same server. Any answer that is not 2xx stops the script, with the
# problem document (RFC 9457) the server sent.
set -euo pipefail

V=${VECHE_URL:-http://127.0.0.1:8080}
V=${V%/}
DATA=${VECHE_DATA_DIR:-./veche-data}
MAIL_WAIT=${MAIL_WAIT:-10}
PASSWORD="correct horse battery staple" # 12 characters or more; no composition rules

step_no=0
step() {
    step_no=$((step_no + 1))
    printf '\n==> %d. %s\n' "$step_no" "$*"
}
say() { printf '    %s\n' "$*"; }
die() {
    printf '\nwalkthrough: FAILED: %s\n' "$*" >&2
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/veche-walkthrough.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- tools: curl, and jq (or python3) to read JSON ------------------------------------------
command -v curl >/dev/null || die "curl is needed (Debian: apt-get install curl)"

install_jq() {
    local sudo=()
    command -v apt-get >/dev/null || return 1
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || return 1
        sudo=(sudo -n)
    fi
    echo "walkthrough: installing jq from Debian" >&2
    "${sudo[@]}" apt-get install -y -qq jq >&2 ||
        { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq jq >&2; }
}

JSON=${WALKTHROUGH_JSON:-}
if [[ -z $JSON ]]; then
    if command -v jq >/dev/null; then
        JSON=jq
    elif command -v python3 >/dev/null; then
        JSON=python3
    elif install_jq && command -v jq >/dev/null; then
        JSON=jq
    else
        die "jq or python3 is needed to read JSON answers (Debian: apt-get install jq)"
    fi
fi
case $JSON in
    jq | python3) command -v "$JSON" >/dev/null || die "WALKTHROUGH_JSON=$JSON, but $JSON is not installed" ;;
    *) die "WALKTHROUGH_JSON must be jq or python3, not '$JSON'" ;;
esac

# A top-level field of the JSON document on stdin, as text ("" when absent or null).
field() {
    if [[ $JSON == jq ]]; then
        jq -r --arg k "$1" '.[$k] // empty | tostring'
    else
        python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$1"
    fi
}

# The `id`s of a page `{items: [...], next_cursor}` on stdin, one a line.
item_ids() {
    if [[ $JSON == jq ]]; then
        jq -r '.items[].id'
    else
        python3 -c '
import json, sys
for item in json.load(sys.stdin)["items"]:
    print(item["id"])'
    fi
}

# Pretty JSON on stdin (the raw text when it is not JSON), indented under a step.
show() {
    local text
    text=$(cat)
    if [[ $JSON == jq ]]; then
        jq . <<<"$text" 2>/dev/null || printf '%s\n' "$text"
    else
        python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin), indent=2, ensure_ascii=False))' \
            <<<"$text" 2>/dev/null || printf '%s\n' "$text"
    fi | sed 's/^/    /'
}

# --- HTTP ---------------------------------------------------------------------------------
# call METHOD PATH [TOKEN] [JSON BODY]: prints the answer's body; on a non-2xx answer
# prints the request and the problem document and stops. Use as `x=$(call ...)`: under
# `set -e` a failed assignment stops the script too.
call() {
    local method=$1 path=$2 token=${3:-} body=${4:-} code
    local args=(-sS -X "$method" -o "$work/body" -w '%{http_code}' --max-time 30)
    [[ -n $token ]] && args+=(-H "authorization: Bearer $token")
    [[ -n $body ]] && args+=(-H 'content-type: application/json' --data-binary "$body")
    code=$(curl "${args[@]}" "$V$path") || die "$method $V$path: no answer (is \`veche up\` running there? set VECHE_URL)"
    if [[ $code != 2?? ]]; then
        {
            printf '\nwalkthrough: %s %s answered %s:\n' "$method" "$path" "$code"
            show <"$work/body"
        } >&2
        die "$method $path answered $code, not 2xx"
    fi
    cat "$work/body"
}

# A timestamp `days` from now in UTC at `hh:mm`, RFC 3339 (GNU date, BSD date, or Python).
future() {
    local days=$1 hm=$2
    date -u -d "+$days days" "+%Y-%m-%dT$hm:00Z" 2>/dev/null ||
        date -u -v "+${days}d" "+%Y-%m-%dT$hm:00Z" 2>/dev/null ||
        python3 -c 'import datetime, sys
d = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=int(sys.argv[1]))
print(d.strftime("%Y-%m-%dT") + sys.argv[2] + ":00Z")' "$days" "$hm"
}

# Waits for the newest mail to `to` containing `needle` under $DATA/mail; prints its path.
# Files are named <unix nanoseconds>-<uuid>.txt, so the name orders them by sending time.
wait_mail() {
    local to=$1 needle=$2 deadline=$((SECONDS + MAIL_WAIT)) f
    while ((SECONDS <= deadline)); do
        if [[ -d $DATA/mail ]]; then
            # Newest first; the first that is to `to` and has the needle.
            while IFS= read -r f; do
                if grep -qixF "To: $to" "$f" && grep -qF "$needle" "$f"; then
                    echo "$f"
                    return 0
                fi
            done < <(find "$DATA/mail" -maxdepth 1 -name '*.txt' -type f | sort -r)
        fi
        sleep 0.2
    done
    if [[ ! -d $DATA/mail ]]; then
        die "no mailbox at $DATA/mail: set VECHE_DATA_DIR to the --data-dir of the server (with VECHE_SMTP_URL set, mail goes to SMTP instead)"
    fi
    die "no mail to $to containing '$needle' under $DATA/mail within ${MAIL_WAIT}s (is VECHE_DATA_DIR the server's data directory?)"
}

# --- the walk -----------------------------------------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$V/readyz") || code=000
if [[ $code == 000 ]]; then
    die "nothing answers at $V: start the platform first (cargo run --release -p veche -- up), or set VECHE_URL"
fi
[[ $code == 200 ]] || die "$V/readyz answered $code, not 200: is the platform still starting?"

run=$(date +%s)$RANDOM
ORGANIZER="anna.$run@example.org"
MEMBER="boris.$run@example.org"
echo "Veche walkthrough against $V (data directory $DATA, run $run, JSON via $JSON)"

step "Sign up the organizer, $ORGANIZER"
user=$(call POST /api/v1/auth/register "" \
    "{\"email\":\"$ORGANIZER\",\"password\":\"$PASSWORD\",\"display_name\":\"Anna\"}")
say "201 Created: user $(field id <<<"$user")"

step "Log in as the organizer"
login=$(call POST /api/v1/auth/login "" "{\"email\":\"$ORGANIZER\",\"password\":\"$PASSWORD\"}")
ANNA=$(field access_token <<<"$login")
[[ -n $ANNA ]] || die "no access_token in the login answer: $login"
say "an access token for $(field expires_in <<<"$login") s, and a refresh token"
me=$(call GET /api/v1/users/me "$ANNA")
say "GET /api/v1/users/me: $(field display_name <<<"$me") <$(field email <<<"$me")>"

step "Sign up and log in the member-to-be, $MEMBER"
user=$(call POST /api/v1/auth/register "" \
    "{\"email\":\"$MEMBER\",\"password\":\"$PASSWORD\",\"display_name\":\"Boris\"}")
say "201 Created: user $(field id <<<"$user")"
login=$(call POST /api/v1/auth/login "" "{\"email\":\"$MEMBER\",\"password\":\"$PASSWORD\"}")
BORIS=$(field access_token <<<"$login")
[[ -n $BORIS ]] || die "no access_token in the login answer: $login"
say "logged in"

step "Create an organization as the organizer (who becomes its owner)"
org=$(call POST /api/v1/organizations "$ANNA" \
    "{\"name\":\"Walkthrough Chess Club $run\",\"description\":\"Made by examples/walkthrough.sh\"}")
ORG=$(field id <<<"$org")
say "organization $ORG, slug $(field slug <<<"$org")"

step "Invite $MEMBER as a member"
invitation=$(call POST "/api/v1/organizations/$ORG/invitations" "$ANNA" "{\"email\":\"$MEMBER\",\"role\":\"member\"}")
say "invitation $(field id <<<"$invitation"), expires $(field expires_at <<<"$invitation")"

step "Read the invitation mail under $DATA/mail"
mail=$(wait_mail "$MEMBER" "/invitations/accept?token=")
INVITE_TOKEN=$(grep -o 'token=[A-Za-z0-9_-]*' "$mail" | head -n 1 | cut -d= -f2)
[[ -n $INVITE_TOKEN ]] || die "no token= link in $mail"
say "$mail:"
sed -n 's/^Subject: /subject: /p' "$mail" | sed 's/^/    /'
say "token ${INVITE_TOKEN:0:8}... (single-use; only its hash is stored)"

step "Accept the invitation as the member"
membership=$(call POST /api/v1/organizations/invitations/accept "$BORIS" "{\"token\":\"$INVITE_TOKEN\"}")
say "joined organization $(field organization_id <<<"$membership") as $(field role <<<"$membership")"

step "Create an event as the organizer (a draft)"
start=$(future 30 16:00)
end=$(future 30 18:00)
event=$(call POST /api/v1/events "$ANNA" "$(
    cat <<JSON
{
  "title": "Walkthrough blitz tournament $run",
  "description": "Five-minute games, **all levels** welcome. Made by examples/walkthrough.sh.",
  "start": "$start", "end": "$end", "time_zone": "Europe/Moscow", "format": "offline",
  "venue": {"name": "Chess club", "address": "Kremlyovskaya 1", "city": "Kazan", "latitude": 55.79, "longitude": 49.12},
  "tags": ["chess", "walkthrough"], "category": "sport", "capacity": 20, "price": null,
  "visibility": "public", "organization_id": "$ORG"
}
JSON
)")
EVENT=$(field id <<<"$event")
say "event $EVENT, status $(field status <<<"$event"), $start .. $end"

step "Publish it"
event=$(call POST "/api/v1/events/$EVENT/publish" "$ANNA")
say "status $(field status <<<"$event")"

step "Search for it anonymously (no token): q=tournaments, city=Kazan, this organization"
# "tournaments" finds "tournament": English and Russian words match their other forms.
found=$(call GET "/api/v1/events?q=tournaments&city=Kazan&organization_id=$ORG")
ids=$(item_ids <<<"$found")
grep -qxF "$EVENT" <<<"$ids" || die "the published event $EVENT is not in the search results: $found"
say "found $EVENT among $(grep -c . <<<"$ids") result(s)"

step "Register for it as the member"
registration=$(call POST "/api/v1/events/$EVENT/registrations" "$BORIS")
say "registration: $(field status <<<"$registration")"
event=$(call GET "/api/v1/events/$EVENT")
say "the event now has $(field registered_count <<<"$event") registered, $(field waitlisted_count <<<"$event") waitlisted"

step "Fetch its iCalendar (.ics), anonymously"
ics=$(call GET "/api/v1/events/$EVENT.ics")
grep -q '^BEGIN:VCALENDAR' <<<"$ics" || die "GET /api/v1/events/$EVENT.ics is not iCalendar: $ics"
printf '%s\n' "$ics" | tr -d '\r' | sed 's/^/    /'

cat <<DONE

==> Done. What this run made (the password of both people: $PASSWORD):
organizer     $ORGANIZER
member        $MEMBER
organization  $ORG
event         $EVENT
DONE
