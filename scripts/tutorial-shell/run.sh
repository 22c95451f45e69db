#!/usr/bin/env bash
# The Shell session pool tutorial (learn.microsoft.com/azure/container-apps/
# sessions-tutorial-shell), translated from PowerShell to bash, with az
# replaced by tidepool. Log in first (tidepool login ...). Steps that only
# matter on Azure (az upgrade, az extension add, Start-Sleep) are left out.
#
# Changes from the tutorial, all because tidepool is not Azure:
# - the execution URL is the pool's poolManagementEndpoint (tidepool serves
#   the data plane itself), not https://$LOCATION.dynamicsessions.io/...;
# - group delete gets --yes, so the script runs without a terminal.
set -euo pipefail

TIDEPOOL=${TIDEPOOL:-tidepool}
tp() { "$TIDEPOOL" "$@"; }
HERE=$(cd "$(dirname "$0")" && pwd)

SUBSCRIPTION=${SUBSCRIPTION:-$(tp account show --query id -o tsv)}
RG=${RG:-tutorial-shell-rg}
POOL=myshellpool # the name in deploy.json
API_VERSION="2025-02-02-preview"
LOCATION="northcentralus" # must match deploy.json
UAMI_NAME="$POOL-uami"
POOL_ID="/subscriptions/$SUBSCRIPTION/resourceGroups/$RG/providers/Microsoft.App/sessionpools/$POOL"

tp provider register --namespace Microsoft.App
tp account set --subscription "$SUBSCRIPTION"
tp group create --name "$RG" --location "$LOCATION"
tp deployment group create --resource-group "$RG" --template-file "$HERE/deploy.json"

tp identity create --resource-group "$RG" --name "$UAMI_NAME" --location "$LOCATION"
UAMI_PRINCIPAL=$(tp identity show --resource-group "$RG" --name "$UAMI_NAME" --query principalId -o tsv)
tp role assignment create --assignee "$UAMI_PRINCIPAL" --role "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0" --scope "$POOL_ID"

TOKEN=$(tp account get-access-token --query accessToken -o tsv)
EXEC_ID=$(cat /proc/sys/kernel/random/uuid) # New-Guid
BODY='{
  "codeInputType": "inline",
  "executionType": "synchronous",
  "command": ["/bin/bash", "-c", "echo '"'"'hello world'"'"'; echo '"'"'hi'"'"'"],
  "timeoutInSeconds": 600
}'
ENDPOINT=$(tp containerapp sessionpool show -n "$POOL" -g "$RG" --query properties.poolManagementEndpoint -o tsv)
URL="$ENDPOINT/executions?api-version=$API_VERSION&identifier=$EXEC_ID"
curl --silent --show-error --fail-with-body --request POST --url "$URL" \
  --header "authorization: Bearer $TOKEN" \
  --header "content-type: application/json" \
  --data "$BODY"
echo

tp resource show --ids "$POOL_ID" --query '{name:name, location:location, provisioningState:properties.provisioningState}'
tp role assignment list --scope "$POOL_ID" --output table

tp group delete --resource-group "$RG" --yes
