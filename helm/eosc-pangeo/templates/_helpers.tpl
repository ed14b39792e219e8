{{- /*
  Names, labels and the checks every render makes. Our resources have fixed names
  (eosc-pangeo-<component>): like zero-to-jupyterhub's, one release per namespace, and the
  subcharts' values refer to the deployment ConfigMap by that name.
*/}}

{{- define "eosc-pangeo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eosc-pangeo.matchLabels" -}}
app.kubernetes.io/name: eosc-pangeo
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eosc-pangeo.labels" -}}
{{ include "eosc-pangeo.matchLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "eosc-pangeo.chart" . }}
{{- end }}

{{- /* The platform image as name:tag; refuses an empty or moving tag. */}}
{{- define "eosc-pangeo.image" -}}
{{- if not .Values.image.name }}
{{- fail "image.name is empty: set it to the registry path of the platform image (images/Containerfile)" }}
{{- end }}
{{- if or (not .Values.image.tag) (eq (toString .Values.image.tag) "latest") }}
{{- fail (printf "image.tag is %q: give the fixed tag (or digest) of one build, never latest, so that notebooks, schedulers and workers run the same versions" (toString .Values.image.tag)) }}
{{- end }}
{{- printf "%s:%s" .Values.image.name (toString .Values.image.tag) }}
{{- end }}

{{- /*
  The subcharts run the same image: a hub, notebook or gateway image that differs from
  `image` is refused with the value to fix (images that drift apart break Dask).
*/}}
{{- define "eosc-pangeo.checkSubchartImages" -}}
{{- $image := include "eosc-pangeo.image" . }}
{{- $checks := list }}
{{- if .Values.jupyterhub.enabled }}
{{- $checks = concat $checks (list (list "jupyterhub.hub.image" .Values.jupyterhub.hub.image) (list "jupyterhub.singleuser.image" .Values.jupyterhub.singleuser.image)) }}
{{- end }}
{{- $gateway := index .Values "dask-gateway" }}
{{- if $gateway.enabled }}
{{- $checks = concat $checks (list (list "dask-gateway.gateway.image" $gateway.gateway.image) (list "dask-gateway.gateway.backend.image" $gateway.gateway.backend.image) (list "dask-gateway.controller.image" $gateway.controller.image)) }}
{{- end }}
{{- range $checks }}
{{- $given := printf "%s:%s" (toString (index . 1).name) (toString (index . 1).tag) }}
{{- if ne $given $image }}
{{- fail (printf "%s is %q but image is %q: set %s.name and .tag to the platform image (a YAML anchor does it, see examples/egi-checkin.yaml)" (index . 0) $given $image (index . 0)) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eosc-pangeo.dashboardsMiddleware" -}}eosc-pangeo-dashboards{{- end }}

{{- /*
  traefik applies the dashboards' ForwardAuth to its whole web entrypoint, which only its
  command line can say (dask-gateway's controller names the middlewares of cluster routes
  itself), and that argument names the namespace: values cannot, so the render checks it.
*/}}
{{- define "eosc-pangeo.checkDashboardsGate" -}}
{{- $gateway := index .Values "dask-gateway" }}
{{- if $gateway.enabled }}
{{- $argument := printf "--entryPoints.web.http.middlewares=%s-%s@kubernetescrd" .Release.Namespace (include "eosc-pangeo.dashboardsMiddleware" .) }}
{{- if not (has $argument (dig "traefik" "additionalArguments" list $gateway)) }}
{{- fail (printf "dask-gateway.traefik.additionalArguments lacks %q: without it, notebooks see any user's Dask dashboard inside the cluster. Add it (it names this release's namespace, %s)" $argument .Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eosc-pangeo.checks" -}}
{{- include "eosc-pangeo.checkSubchartImages" . }}
{{- include "eosc-pangeo.checkDashboardsGate" . }}
{{- $gateway := index .Values "dask-gateway" }}
{{- if and $gateway.enabled (not .Values.dask.crdsAllowed) }}
{{- fail "dask.crdsAllowed is false but dask-gateway.enabled is true: dask-gateway's Kubernetes backend needs its DaskCluster CRD. Set dask-gateway.enabled=false (notebooks then use local Dask clusters in their pod), or have a cluster admin install the CRDs and deploy with --skip-crds" }}
{{- end }}
{{- if .Values.jobs.enabled }}
{{- if not .Values.jupyterhub.enabled }}
{{- fail "jobs.enabled is true but jupyterhub.enabled is false: the jobs service is a hub service (users and their tokens are the hub's)" }}
{{- end }}
{{- if not (hasKey (dig "hub" "services" dict .Values.jupyterhub) "jobs") }}
{{- fail "jobs.enabled is true but jupyterhub.hub.services has no jobs entry: add `jobs: {}` there, so that zero-to-jupyterhub keeps the service's hub token in its Secret (key hub.services.jobs.apiToken)" }}
{{- end }}
{{- end }}
{{- if and .Values.lake.s3.enabled (not .Values.lake.s3.existingSecret) }}
{{- fail "lake.s3.enabled is true but lake.s3.existingSecret is empty: name the Secret that holds the S3 keys" }}
{{- end }}
{{- if and (eq .Values.lake.volume.type "pvc") (not .Values.lake.volume.existingClaim) }}
{{- fail "lake.volume.type is pvc but lake.volume.existingClaim is empty: name the PersistentVolumeClaim of the lake" }}
{{- end }}
{{- if and (eq .Values.lake.volume.type "nfs") (not (and .Values.lake.volume.nfs.server .Values.lake.volume.nfs.path)) }}
{{- fail "lake.volume.type is nfs: set lake.volume.nfs.server and lake.volume.nfs.path" }}
{{- end }}
{{- if .Values.auth.oidc.enabled }}
{{- range list "issuerUrl" "clientId" "callbackUrl" }}
{{- if not (index $.Values.auth.oidc .) }}
{{- fail (printf "auth.oidc.enabled is true but auth.oidc.%s is empty" .) }}
{{- end }}
{{- end }}
{{- $secret := .Values.auth.oidc.clientSecret.existingSecret }}
{{- if not $secret }}
{{- fail "auth.oidc.enabled is true but auth.oidc.clientSecret.existingSecret is empty: name the Secret holding the OIDC client secret" }}
{{- end }}
{{- $mounted := false }}
{{- range (dig "hub" "extraVolumes" list .Values.jupyterhub) }}
{{- if eq (dig "secret" "secretName" "" .) $secret }}{{ $mounted = true }}{{ end }}
{{- end }}
{{- if not $mounted }}
{{- fail (printf "auth.oidc.enabled is true but no jupyterhub.hub.extraVolumes entry mounts Secret %q: add it with a hub.extraVolumeMounts entry at /usr/local/etc/eosc-pangeo/oidc (see examples/egi-checkin.yaml)" $secret) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* The dask-gateway subchart's full name, as its own helper computes it. */}}
{{- define "eosc-pangeo.gatewayFullname" -}}
{{- $gateway := index .Values "dask-gateway" }}
{{- if $gateway.fullnameOverride }}
{{- $gateway.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "dask-gateway" $gateway.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eosc-pangeo.gatewayProxyHost" -}}
{{- printf "traefik-%s" (include "eosc-pangeo.gatewayFullname" .) | trunc 63 | trimSuffix "-" }}.{{ .Release.Namespace }}
{{- end }}

{{- define "eosc-pangeo.catalogUrl" -}}
{{- if .Values.catalog.enabled }}
{{- printf "http://eosc-pangeo-catalog.%s:%v" .Release.Namespace .Values.catalog.port }}
{{- end }}
{{- end }}

{{- /* Pod and container hardening of our own pods (the Python side has the same, kube.py). */}}
{{- define "eosc-pangeo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 100
fsGroup: 100
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "eosc-pangeo.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
readOnlyRootFilesystem: {{ .Values.security.readOnlyRootFilesystem }}
{{- end }}
