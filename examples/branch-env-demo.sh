#!/bin/sh
# A demonstration environment manager for stories/branch-environments.yaml: it keeps each
# branch environment as a small JSON file in a directory next to itself (or in
# $BRANCH_ENV_STATE) instead of running anything. A real one would `helm upgrade --install`,
# `terraform apply`, or `docker compose -p NAME up -d` on a host — with the same contract:
#
#   branch-env-demo.sh deploy OWNER/REPO BRANCH SHA NAME
#       creates or updates environment NAME running REPO at SHA; logs to stderr, and prints
#       as its last line of stdout {"address": "IPv4"} — where NAME's DNS record points
#   branch-env-demo.sh destroy NAME
#       removes environment NAME; succeeds when there is none
#   branch-env-demo.sh list
#       prints [{"name", "branch", "repo", "sha"}, …], one object per environment
set -eu

state=${BRANCH_ENV_STATE:-"$(cd "$(dirname "$0")" && pwd)/branch-envs"}
mkdir -p "$state"

# JSON string escaping for the few characters a branch name may hold that JSON cares about.
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# Environment names are DNS labels (the story's slugs): refuse anything else.
check_name() {
    case "$1" in
        ''|*[!a-z0-9-]*) echo "not an environment name: $1" >&2; exit 2 ;;
    esac
}

case "${1:-}" in
deploy)
    [ $# -eq 5 ] || { echo "usage: $0 deploy OWNER/REPO BRANCH SHA NAME" >&2; exit 2; }
    repo=$2 branch=$3 sha=$4 name=$5
    check_name "$name"
    echo "deploying $repo@$sha ($branch) as $name" >&2
    printf '{"name": %s, "branch": %s, "repo": %s, "sha": %s}\n' \
        "$(quote "$name")" "$(quote "$branch")" "$(quote "$repo")" "$(quote "$sha")" \
        > "$state/$name.json.tmp"
    mv "$state/$name.json.tmp" "$state/$name.json"
    # A stable address per environment from the documentation range (RFC 5737).
    n=$(printf '%s' "$name" | cksum | cut -d' ' -f1)
    printf '{"address": "203.0.113.%d"}\n' $((n % 254 + 1))
    ;;
destroy)
    [ $# -eq 2 ] || { echo "usage: $0 destroy NAME" >&2; exit 2; }
    check_name "$2"
    rm -f "$state/$2.json"
    echo "destroyed $2" >&2
    ;;
list)
    sep=''
    printf '['
    for f in "$state"/*.json; do
        [ -e "$f" ] || continue
        printf '%s' "$sep"
        tr -d '\n' < "$f"
        sep=', '
    done
    printf ']\n'
    ;;
*)
    echo "usage: $0 deploy OWNER/REPO BRANCH SHA NAME | destroy NAME | list" >&2
    exit 2
    ;;
esac
