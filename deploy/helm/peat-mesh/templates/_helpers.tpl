{{/* Chart name. */}}
{{- define "peat-mesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the StatefulSet, headless Service and pod name prefix (pods are <fullname>-<ordinal>). */}}
{{- define "peat-mesh.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "peat-mesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. `app: peat-mesh` is the fixed label the node's Kubernetes discovery
selects EndpointSlices by (slices inherit the headless Service's labels).
*/}}
{{- define "peat-mesh.selectorLabels" -}}
app: peat-mesh
app.kubernetes.io/name: {{ include "peat-mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels every object carries, without a component. */}}
{{- define "peat-mesh.baseLabels" -}}
helm.sh/chart: {{ include "peat-mesh.chart" . }}
app.kubernetes.io/name: {{ include "peat-mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Standard labels without `app: peat-mesh` (for objects discovery must not see). */}}
{{- define "peat-mesh.standardLabels" -}}
{{ include "peat-mesh.baseLabels" . }}
app.kubernetes.io/component: mesh-node
{{- end }}

{{/* Common labels. */}}
{{- define "peat-mesh.labels" -}}
app: peat-mesh
{{ include "peat-mesh.standardLabels" . }}
{{- end }}

{{- define "peat-mesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "peat-mesh.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "peat-mesh.secretName" -}}
{{- default (include "peat-mesh.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
The broker token: a Secret volume mounted at brokerTokenDir, the token in its file brokerTokenKey
(PEAT_BROKER_TOKEN_FILE = <dir>/<key>). The node re-reads the file when the kubelet swaps the
volume's ..data symlink, so rotating the Secret needs no restart.
*/}}
{{- define "peat-mesh.brokerTokenSecretName" -}}
{{- default (printf "%s-broker-token" (include "peat-mesh.fullname" .)) .Values.brokerToken.existingSecret }}
{{- end }}

{{- define "peat-mesh.brokerTokenKey" -}}broker-token{{- end }}

{{- define "peat-mesh.brokerTokenDir" -}}/var/run/secrets/peat-mesh{{- end }}

{{- define "peat-mesh.brokerTokenFile" -}}
{{- printf "%s/%s" (include "peat-mesh.brokerTokenDir" .) (include "peat-mesh.brokerTokenKey" .) }}
{{- end }}

{{/*
Mode of the token file: group-readable for the pod's fsGroup (the kubelet gives the file that
group); readable by any user when there is no fsGroup, else a non-root user could not read it.
*/}}
{{- define "peat-mesh.brokerTokenMode" -}}
{{- include "peat-mesh.secretFileMode" . }}
{{- end }}

{{- define "peat-mesh.secretFileMode" -}}
{{- if dig "fsGroup" nil (.Values.podSecurityContext | default dict) }}0440{{ else }}0444{{ end }}
{{- end }}

{{/* Sync port; the deprecated irohBindPort wins when set. */}}
{{- define "peat-mesh.syncPort" -}}
{{- if kindIs "invalid" .Values.irohBindPort }}{{ .Values.syncPort }}{{ else }}{{ .Values.irohBindPort }}{{ end }}
{{- end }}

{{/*
Relay URLs of the nodes: relayUrls (the deprecated irohRelayUrls wins when set, non-empty); when
both are empty and the chart runs the relay, its Service inside the cluster.
*/}}
{{- define "peat-mesh.relayUrls" -}}
{{- $urls := default .Values.relayUrls .Values.irohRelayUrls }}
{{- if and (not $urls) .Values.relay.enabled }}
{{- $urls = printf "https://%s.%s.svc:%v" (include "peat-mesh.relayName" .) .Release.Namespace .Values.relay.port }}
{{- end }}
{{- $urls }}
{{- end }}

{{/*
The relay (`peat-mesh-node relay`): a Deployment and Service <fullname>-relay (at most 63
characters, a Service name). Its pods and objects carry component relay and never `app: peat-mesh`,
so the StatefulSet, the headless Service, the PodDisruptionBudget, the nodes' NetworkPolicy and
Kubernetes discovery (EndpointSlices labelled app=peat-mesh) never see them.
*/}}
{{- define "peat-mesh.relayName" -}}
{{- printf "%s-relay" (include "peat-mesh.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* The health port's ClusterIP Service when the relay Service is a NodePort or LoadBalancer. */}}
{{- define "peat-mesh.relayHealthName" -}}
{{- printf "%s-relay-health" (include "peat-mesh.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{- define "peat-mesh.relaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "peat-mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: relay
{{- end }}

{{- define "peat-mesh.relayLabels" -}}
{{ include "peat-mesh.baseLabels" . }}
app.kubernetes.io/component: relay
{{- end }}

{{/* The relay's access key (key relay-access-key): relay.existingSecret, else the chart's. */}}
{{- define "peat-mesh.relayAccessKeySecretName" -}}
{{- default (printf "%s-relay-access-key" (include "peat-mesh.fullname" .)) .Values.relay.existingSecret }}
{{- end }}

{{- define "peat-mesh.relayTLSDir" -}}/var/run/secrets/peat-relay/tls{{- end }}

{{/* The relay's Service carries the health port too only as a ClusterIP (a NodePort Service puts every port on the nodes). */}}
{{- define "peat-mesh.relayHealthOnMainService" -}}
{{- if eq .Values.relay.service.type "ClusterIP" }}true{{ end }}
{{- end }}

{{/* Kubernetes discovery needs the API (token + Role); the other modes do not. */}}
{{- define "peat-mesh.needsApi" -}}
{{- if eq .Values.discoveryMode "kubernetes" }}true{{ end }}
{{- end }}

{{/* Checks the schema cannot express; fails the render with a message saying what to set. */}}
{{- define "peat-mesh.validate" -}}
{{- $secret := trim .Values.formationSecret }}
{{- if and (not $secret) (not .Values.existingSecret) }}
{{- fail "formationSecret is required: set --set formationSecret=$(openssl rand -base64 32) or existingSecret=<name of a Secret with key formation-secret>" }}
{{- end }}
{{- if and $secret (not .Values.existingSecret) (not (regexMatch "^([A-Za-z0-9+/]{4}){5,}([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/]{4})$" $secret)) }}
{{- fail "formationSecret must be standard padded base64 of at least 16 bytes (e.g. $(openssl rand -base64 32))" }}
{{- end }}
{{- if not (kindIs "invalid" .Values.nodePort.brokerNodePort) }}
{{- fail "nodePort.brokerNodePort is no longer supported: the NodePort Service exposes only the sync port; the broker needs its bearer token and stays inside the cluster (kubectl port-forward). Remove the value (--set nodePort.brokerNodePort=null on upgrade)" }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if has .name (list "PEAT_BROKER_TOKEN" "PEAT_BROKER_TOKEN_FILE") }}
{{- fail (printf "extraEnv must not set %s: the chart gives the node its broker token as the file %s from a Secret (name your own Secret with brokerToken.existingSecret)" .name (include "peat-mesh.brokerTokenFile" $)) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.discoveryMode "static") (not (trim .Values.staticPeers)) }}
{{- fail "discoveryMode static needs staticPeers: set --set staticPeers=[node_id@]host:port,..." }}
{{- end }}
{{- include "peat-mesh.validateRelay" . }}
{{- end }}

{{/* The relay's values; checked whether or not it is enabled, so that a mistake shows at once. */}}
{{- define "peat-mesh.validateRelay" -}}
{{- $relay := .Values.relay }}
{{- $key := trim ($relay.accessKey | default "") }}
{{- if and $relay.enabled (not $key) (not $relay.existingSecret) }}
{{- fail "relay.enabled needs the relay access key, which Helm cannot derive: run `peat-mesh-node relay-key` with PEAT_FORMATION_SECRET set to the formation secret (e.g. PEAT_FORMATION_SECRET=... peat-mesh-node relay-key, or docker run --rm -e PEAT_FORMATION_SECRET <image> relay-key) and pass what it prints as --set relay.accessKey=<key>, or set relay.existingSecret=<name of a Secret with key relay-access-key>" }}
{{- end }}
{{- if and $key $relay.existingSecret }}
{{- fail "relay.accessKey and relay.existingSecret are both set: give the access key one way (relay.accessKey=null to use the Secret)" }}
{{- end }}
{{- if eq (int $relay.port) (int $relay.healthPort) }}
{{- fail (printf "relay.port and relay.healthPort are both %v: the relay listener and its health port need two ports" $relay.port) }}
{{- end }}
{{- if and (not (kindIs "invalid" $relay.service.nodePort)) (eq $relay.service.type "ClusterIP") }}
{{- fail "relay.service.nodePort needs relay.service.type NodePort or LoadBalancer" }}
{{- end }}
{{- range $i, $peer := $relay.networkPolicy.from }}
{{- if and (hasKey $peer "ipBlock") (or (hasKey $peer "podSelector") (hasKey $peer "namespaceSelector")) }}
{{- fail (printf "relay.networkPolicy.from[%d]: ipBlock cannot be combined with podSelector or namespaceSelector (Kubernetes rejects it); give each its own entry" $i) }}
{{- end }}
{{- end }}
{{- end }}
