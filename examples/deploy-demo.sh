#!/bin/sh
# A demonstration deploy for stories/chatops-deploy.yaml: it records each deploy in
# deploys.log next to itself (or $DEPLOY_DEMO_LOG) instead of deploying. A real one runs
# Capistrano, Ansible, `kubectl set image`, … — with the same contract:
#
#   deploy-demo.sh REPOSITORY REF SHA ENVIRONMENT
#       deploys SHA (of REF) to ENVIRONMENT; logs to stdout and stderr; exits non-zero when
#       the deploy failed
#
# To show a failed deploy, it refuses refs whose name starts with `broken`.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 REPOSITORY REF SHA ENVIRONMENT" >&2; exit 2; }
repository=$1 ref=$2 sha=$3 environment=$4
log=${DEPLOY_DEMO_LOG:-"$(cd "$(dirname "$0")" && pwd)/deploys.log"}
case "$ref" in
    broken*) echo "deploy of $repository $ref to $environment failed: health check timed out" >&2; exit 1 ;;
esac
echo "deploying $repository $ref ($sha) to $environment"
printf '%s %s %s %s\n' "$repository" "$ref" "$sha" "$environment" >> "$log"
echo "done"
