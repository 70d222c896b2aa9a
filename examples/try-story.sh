#!/usr/bin/env bash
# Tries one shipped story locally, end to end, with one command:
#
#   examples/try-story.sh trial-provisioning | branch-environments | release-pipeline | chatops-deploy
#
# It builds `switchyard` and `switchyard-standins`, starts the vendors' stand-ins
# (DigitalOcean, HubSpot, SendGrid, GitHub, chat, tracker, artifact repository) seeded for the
# story, a real SMTP server (tests/e2e/smtp_sink.py; aiosmtpd is installed when missing) for the
# trial story, and `switchyard serve` on a copy of the story in a temporary directory; it
# points the packs at the stand-ins with the `resource set` / `credential set` commands the
# stand-ins print, plays the systems around the story (the signup backend, GitHub, a chat
# user, a Droplet's cloud-init), and shows what happened: the runs and the stand-ins' state.
# Everything it started is stopped at the end; KEEP=1 leaves it running until Ctrl-C.
# Needs curl, jq, openssl, python3; honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

story=${1:-}
case "$story" in
trial-provisioning | branch-environments | release-pipeline | chatops-deploy) ;;
*)
    echo "usage: $0 trial-provisioning|branch-environments|release-pipeline|chatops-deploy" >&2
    exit 2
    ;;
esac
for tool in curl jq openssl python3; do
    command -v "$tool" >/dev/null || { echo "$0 needs $tool" >&2; exit 2; }
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building switchyard and switchyard-standins"
cargo build -q -p switchyard -p switchyard-standins
bin="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)"
export PATH="$bin:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/try-$story.XXXXXX")
pids=()
cleanup() {
    exec 3>&- 2>/dev/null || true # closing the SMTP server's stdin stops it
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits (up to 60 s) for a shell condition.
wait_for() {
    local what=$1; shift
    for _ in $(seq 600); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "gave up waiting for $what" >&2
    exit 1
}

# ---- the stand-ins, seeded for the story -------------------------------------------------
case "$story" in
trial-provisioning)
    seed='{"digitalocean": {"domains": ["trials.example.com"],
                            "droplets": [{"name": "trial-pool-1", "tags": ["trial-pending"]}]},
           "github": [{"repo": "acme/trial-app", "default_branch": "main"}],
           "hubspot": {"contacts": [{"email": "grace@example.com", "firstname": "Grace"}]},
           "sendgrid": {"templates": ["d-0123456789abcdef0123456789abcdef"]}}' ;;
branch-environments)
    seed='{"digitalocean": {"domains": ["review.example.com"]},
           "github": [{"repo": "acme/shop", "default_branch": "main",
                       "commits": [{"branch": "main", "message": "Add checkout", "author": "ada"},
                                   {"branch": "feature-login", "message": "Add login", "author": "grace"},
                                   {"branch": "spike-no-infra", "message": "Try it", "author": "linus"}]}]}' ;;
release-pipeline)
    seed='{"github": [{"repo": "acme/shop", "default_branch": "main",
                       "commits": [{"branch": "release-1.4", "message": "Prepare 1.4.0", "author": "ada"}],
                       "tags": {"v1.4.0": "release-1.4"},
                       "statuses": [{"ref": "v1.4.0", "context": "ci/build", "state": "success"}],
                       "pulls": [{"number": 42, "head": "release-1.4", "base": "main", "title": "Release 1.4.0",
                                  "reviews": [{"user": "grace", "state": "APPROVED"}]}]}],
           "tracker": {"REL-7": "Ready for Release", "REL-8": "In Progress"}}' ;;
chatops-deploy)
    seed='{"github": [{"repo": "acme/shop", "default_branch": "main",
                       "commits": [{"branch": "main", "message": "Add checkout", "author": "ada"},
                                   {"branch": "broken-login", "message": "Try a new login", "author": "linus"}],
                       "statuses": [{"ref": "main", "context": "ci/test", "state": "success"},
                                    {"ref": "broken-login", "context": "ci/test", "state": "failure"}]}],
           "chat": {"channels": ["deploys"]}}' ;;
esac
printf '%s' "$seed" >"$work/seed.json"
say "starting the stand-ins"
switchyard-standins --packs packs --seed "$work/seed.json" --quiet >"$work/standins.out" 2>&1 &
pids+=($!)
wait_for "the stand-ins" grep -q '^# Requests' "$work/standins.out"
grep '^#   ' "$work/standins.out"
url_of() { awk -v v="$1" '$1 == "#" && $2 == v { print $3; exit }' "$work/standins.out"; }
github=$(url_of github)
github_token=$(sed -n "s/^printf %s '\(.*\)' | switchyard credential set github_token$/\1/p" "$work/standins.out")

# ---- the server ----------------------------------------------------------------------------
port=$(free_port)
export SWITCHYARD_URL="http://127.0.0.1:$port"
unset SWITCHYARD_TOKEN
mkdir "$work/stories"
cp "stories/$story.yaml" "$work/stories/"
say "starting switchyard serve on $SWITCHYARD_URL (log: $work/serve.log)"
switchyard serve --listen "127.0.0.1:$port" --stories "$work/stories" --packs packs \
    --data "$work/data" --allow-commands --allow-private-networks >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for "the server" curl -sf "$SWITCHYARD_URL/healthz"

say "pointing the packs at the stand-ins"
grep -E '^(switchyard|printf) ' "$work/standins.out" | sh >/dev/null
credential() { printf %s "$2" | switchyard credential set "$1" >/dev/null; }
resource() { switchyard resource set "$1" "$2" >/dev/null; }

# Waits for a run to end and prints it as a tree.
show_run() {
    wait_for "run $1" sh -c "switchyard runs show $1 --json | jq -e '.run.status != \"running\"'"
    switchyard runs show "$1"
}
# GitHub's X-Hub-Signature-256 of a file, and a signed delivery of it to a webhook.
deliver() { # EVENT PATH FILE
    local sig
    sig=$(openssl dgst -sha256 -hmac "github-hook-secret" -r <"$3" | cut -d' ' -f1)
    curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/$2" -H 'content-type: application/json' \
        -H "x-github-event: $1" -H "x-github-delivery: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
        -H "x-hub-signature-256: sha256=$sig" --data-binary "@$3" | jq -r .run_id
}
gh() { # METHOD PATH [JSON]
    local body=()
    if [ $# -gt 2 ]; then body=(-H 'content-type: application/json' -d "$3"); fi
    curl -sSf -X "$1" "$github$2" -H "authorization: Bearer $github_token" \
        -H 'accept: application/vnd.github+json' "${body[@]}"
}
a_records='.domains | map_values(map(select(.type == "A") | {name, data}))'
state() { curl -sS "$(url_of "$1")/_standin/state" | jq -c "${2:-.}"; }
credential github_webhook_secret github-hook-secret

# ---- the story -------------------------------------------------------------------------------
case "$story" in
trial-provisioning)
    python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd
    smtp_port=$(free_port)
    mkdir "$work/mail"
    mkfifo "$work/smtp.in"
    python3 tests/e2e/smtp_sink.py "$smtp_port" "$work/mail" <"$work/smtp.in" >"$work/smtp.log" 2>&1 &
    pids+=($!)
    exec 3>"$work/smtp.in"
    wait_for "the SMTP server" grep -q '^ready' "$work/smtp.log"
    credential smtp "smtp://127.0.0.1:$smtp_port"
    credential trial_request_token signup-secret
    credential trial_build_token cloud-init-secret
    resource trial_domain trials.example.com
    resource trial_github_owner acme
    resource trial_github_repo trial-app
    resource trial_support_email support@example.com
    resource trial_sender_email hello@example.com
    resource trial_welcome_template d-0123456789abcdef0123456789abcdef
    resource switchyard_public_url "$SWITCHYARD_URL"
    resource trial_retry_after 2s

    say "the signup backend asks for a trial (the pool holds one Droplet)"
    run=$(curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/request" -H 'content-type: application/json' \
        -H 'authorization: Bearer signup-secret' \
        -d '{"email": "grace@example.com", "name": "Grace Hopper", "company": "Navy"}' | jq -r .run_id)
    show_run "$run"
    say "the Droplets: the pooled one is now tagged trial, a replacement is building"
    state digitalocean '.droplets[] | {id, name, status, tags}'

    say "the deployer reports success: GitHub delivers deployment_status"
    id=$(gh GET /repos/acme/trial-app/deployments | jq '.[0].id')
    gh POST "/repos/acme/trial-app/deployments/$id/statuses" '{"state": "success"}' >"$work/status.json"
    jq -n --slurpfile s "$work/status.json" --argjson d "$(gh GET "/repos/acme/trial-app/deployments/$id")" \
        --argjson r "$(gh GET /repos/acme/trial-app)" \
        '{action: "created", deployment_status: $s[0], deployment: $d, repository: $r}' >"$work/event.json"
    show_run "$(deliver deployment_status deployed "$work/event.json")"
    say "DNS, HubSpot (the existing contact reused, a trial deal associated), SendGrid"
    state digitalocean "$a_records"
    state hubspot
    state sendgrid

    say "the replacement Droplet's cloud-init reports its build"
    building=$(state digitalocean '[.droplets[] | select(.tags | index("trial-building"))][0].id')
    run=$(curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/built" -H 'content-type: application/json' \
        -H 'authorization: Bearer cloud-init-secret' -d "{\"droplet_id\": $building}" | jq -r .run_id)
    show_run "$run"
    state digitalocean '.droplets[] | {id, name, status, tags}'

    request() {
        curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/request" -H 'content-type: application/json' \
            -H 'authorization: Bearer signup-secret' -d "$1" | jq -r .run_id
    }
    say "the next request takes that Droplet (and builds another); one more finds the pool empty"
    show_run "$(request '{"email": "ada@example.com", "name": "Ada Lovelace", "company": "Engines"}')" | sed -n 1p
    show_run "$(request '{"email": "linus@example.com", "name": "Linus", "company": "Kernel"}')" | sed -n 1p
    wait_for "support's mail" sh -c "ls $work/mail/*.json"
    jq -r '"mail to \(.rcpt_tos): " + (.data | split("\r\n") | map(select(startswith("Subject:"))) | first)' "$work"/mail/*.json
    state digitalocean '.droplets[] | {id, name, status, tags}'
    say "the builds report back; the waiting request (retried every 2s) takes one"
    for id in $(state digitalocean '.droplets[] | select(.tags | index("trial-building")) | .id'); do
        curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/built" -H 'content-type: application/json' \
            -H 'authorization: Bearer cloud-init-secret' -d "{\"droplet_id\": $id}" >/dev/null
    done
    wait_for "Linus's deployment" sh -c "curl -sf -H 'authorization: Bearer $github_token' $github/repos/acme/trial-app/deployments | jq -e 'map(.payload.email) | index(\"linus@example.com\")'"
    state digitalocean '.droplets[] | {id, name, status, tags}'
    ;;

branch-environments)
    cp examples/branch-env-demo.sh "$work/branch-env"
    resource branch_env_domain review.example.com
    resource branch_env_script "$work/branch-env"
    push() { # BRANCH DELETED
        local after
        if [ "$2" = true ]; then after=$(printf '0%.0s' $(seq 40)); else
            after=$(gh GET "/repos/acme/shop/branches/$1" | jq -r .commit.sha); fi
        jq -n --arg ref "refs/heads/$1" --arg after "$after" --argjson deleted "$2" \
            --argjson r "$(gh GET /repos/acme/shop)" \
            '{ref: $ref, before: ("0" * 40), after: $after, created: ($deleted | not), deleted: $deleted,
              repository: $r, pusher: {name: "ada"}, sender: {login: "ada"}}' >"$work/push.json"
        deliver push push "$work/push.json"
    }
    say "GitHub delivers a push of feature-login"
    show_run "$(push feature-login false)"
    say "a push of spike-no-infra is skipped"
    show_run "$(push spike-no-infra false)"
    say "environments, DNS records, GitHub deployments"
    "$work/branch-env" list
    state digitalocean "$a_records"
    gh GET /repos/acme/shop/deployments | jq -c '.[] | {id, environment, ref}'
    say "the branch is deleted: DNS record first, then the environment"
    show_run "$(push feature-login true)"
    "$work/branch-env" list
    state digitalocean "$a_records"
    say "an environment whose branch is gone without a delivery (as if Switchyard was down)"
    "$work/branch-env" deploy acme/shop old-spike "$(printf '0%.0s' $(seq 40))" old-spike >/dev/null 2>&1
    do_token=$(sed -n "s/^printf %s '\(.*\)' | switchyard credential set digitalocean_token$/\1/p" "$work/standins.out")
    curl -sSf -X POST "$(url_of digitalocean)/v2/domains/review.example.com/records" \
        -H "authorization: Bearer $do_token" -H 'content-type: application/json' \
        -d '{"type": "A", "name": "old-spike", "data": "203.0.113.99", "ttl": 300}' >/dev/null
    "$work/branch-env" list
    say "the hourly cleanup, fired now, removes it"
    switchyard trigger "$story" hourly --wait
    "$work/branch-env" list
    state digitalocean "$a_records"
    ;;

release-pipeline)
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/release.pem" 2>/dev/null
    resource release_build_script "$root/examples/release-build-demo.sh"
    resource release_signing_key "$work/release.pem"
    credential release_token release-secret
    say "a ready release, started with switchyard trigger"
    switchyard trigger "$story" release --wait --data '{"repository": "acme/shop", "pull_request": 42,
        "ref": "v1.4.0", "version": "1.4.0", "ticket": "REL-7", "requested_by": "ada"}'
    say "a release whose ticket is not ready stops at that gate"
    switchyard trigger "$story" release --wait --data '{"repository": "acme/shop", "pull_request": 42,
        "ref": "v1.4.0", "version": "1.4.1", "ticket": "REL-8", "requested_by": "ada"}' || true
    say "chat, the artifact repository, GitHub deployments"
    state chat '.messages[] | {channel: .channel_name, thread_ts, text}'
    state artifacts
    gh GET /repos/acme/shop/deployments | jq -c '.[] | {id, environment, ref}'
    ;;

chatops-deploy)
    cp examples/deploy-demo.sh "$work/deploy"
    resource chatops_apps '{"shop": {"repository": "acme/shop", "default_branch": "main",
                                     "environments": ["production", "staging", "qa"]}}'
    resource chatops_channel deploys
    resource chatops_deploy_script "$work/deploy"
    credential chatops_command_token slash-token
    command() {
        curl -sS -X POST "$SWITCHYARD_URL/webhook/$story/command" -H 'authorization: Token slash-token' \
            --data-urlencode "command=$1" --data-urlencode "text=$2" -d user_name=ada -d channel_id=deploys
        echo
    }
    deployment_event() { # DEPLOYMENT-ID
        jq -n --argjson d "$(gh GET "/repos/acme/shop/deployments/$1")" --argjson r "$(gh GET /repos/acme/shop)" \
            '{action: "created", deployment: $d, repository: $r, sender: $d.creator}' >"$work/event.json"
        show_run "$(deliver deployment deployment "$work/event.json")"
    }
    say "/deploy shop to staging (main is green)"
    command /deploy "shop to staging"
    wait_for "the deployment" sh -c "curl -sf -H 'authorization: Bearer $github_token' $github/repos/acme/shop/deployments | jq -e 'length == 1'"
    say "GitHub delivers the deployment event: the deploy runs"
    deployment_event "$(gh GET /repos/acme/shop/deployments | jq '.[0].id')"
    say "/deploy shop/broken-login to qa is refused (red); deploy! forces it, and it fails"
    command /deploy "shop/broken-login to qa"
    command /deploy! "shop/broken-login to qa"
    wait_for "the forced deployment" sh -c "curl -sf -H 'authorization: Bearer $github_token' $github/repos/acme/shop/deployments | jq -e 'length == 2'"
    deployment_event "$(gh GET /repos/acme/shop/deployments | jq '.[0].id')"
    say "the daily report, fired now"
    switchyard trigger "$story" daily --wait
    say "the chat"
    state chat '.messages[] | {channel: .channel_name, thread_ts, text}'
    ;;
esac

say "the runs"
switchyard runs list --story "$story"
if [ "${KEEP:-}" = 1 ]; then
    say "still running (SWITCHYARD_URL=$SWITCHYARD_URL); Ctrl-C stops everything"
    wait
fi
