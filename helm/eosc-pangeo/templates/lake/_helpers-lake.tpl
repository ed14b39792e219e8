{{- /*
  The lake as a Kubernetes volume source and environment. Notebooks and Dask pods get the
  same description through the deployment ConfigMap (eosc_pangeo.platform.kube.lake_access);
  these helpers give it to the chart's own pods (catalogue, CronJob).
*/}}

{{- define "eosc-pangeo.lake.volumeSource" -}}
{{- $volume := .Values.lake.volume }}
{{- if eq $volume.type "pvc" }}
persistentVolumeClaim:
  claimName: {{ $volume.existingClaim }}
{{- else if eq $volume.type "nfs" }}
nfs:
  server: {{ $volume.nfs.server }}
  path: {{ $volume.nfs.path }}
{{- end }}
{{- end }}

{{- /* Volumes of a pod of ours: scratch /tmp (read-only root) and the lake if on a volume. */}}
{{- define "eosc-pangeo.lake.volumes" -}}
- name: scratch
  emptyDir: {}
{{- if ne .Values.lake.volume.type "none" }}
- name: eosc-pangeo-lake
  {{- include "eosc-pangeo.lake.volumeSource" . | nindent 2 }}
{{- end }}
{{- end }}

{{- /* Mounts; call with (list $ readOnly). */}}
{{- define "eosc-pangeo.lake.volumeMounts" -}}
{{- $root := index . 0 }}
- name: scratch
  mountPath: /tmp
{{- if ne $root.Values.lake.volume.type "none" }}
- name: eosc-pangeo-lake
  mountPath: {{ $root.Values.lake.mountPath }}
  readOnly: {{ index . 1 }}
{{- end }}
{{- end }}

{{- /* Settings from the lake ConfigMap, keys from the lake's Secret: the pod's env. */}}
{{- define "eosc-pangeo.lake.envFrom" -}}
- configMapRef:
    name: eosc-pangeo-lake
{{- end }}

{{- define "eosc-pangeo.lake.secretEnv" -}}
{{- if .Values.lake.s3.enabled }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.lake.s3.existingSecret }}
      key: {{ .Values.lake.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.lake.s3.existingSecret }}
      key: {{ .Values.lake.s3.secretAccessKeyKey }}
{{- end }}
{{- end }}
