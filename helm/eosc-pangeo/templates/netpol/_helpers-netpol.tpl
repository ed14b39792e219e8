{{- /*
  Pod selectors of the platform's components, for the network policies. Dask pods carry the
  labels of dask-gateway's controller; notebooks those of KubeSpawner under zero-to-jupyterhub.
*/}}

{{- define "eosc-pangeo.netpol.notebooks" -}}
podSelector:
  matchLabels:
    component: singleuser-server
    app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eosc-pangeo.netpol.hub" -}}
podSelector:
  matchLabels:
    component: hub
    app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eosc-pangeo.netpol.hubProxy" -}}
podSelector:
  matchLabels:
    component: proxy
    app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eosc-pangeo.netpol.gatewayComponent" -}}
{{- $root := index . 0 }}
podSelector:
  matchLabels:
    app.kubernetes.io/name: dask-gateway
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "eosc-pangeo.netpol.dask" -}}
{{- $root := index . 0 }}
podSelector:
  matchLabels:
    gateway.dask.org/instance: {{ include "eosc-pangeo.gatewayFullname" $root }}
    app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- /* One of our components as a peer: (list . component). */}}
{{- define "eosc-pangeo.netpol.component" -}}
podSelector:
  matchLabels:
    {{- include "eosc-pangeo.matchLabels" (index . 0) | nindent 4 }}
    app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- /* An egress rule to one of our components: (list . component port). */}}
{{- define "eosc-pangeo.netpol.toComponent" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "eosc-pangeo.matchLabels" (index . 0) | nindent 10 }}
          app.kubernetes.io/component: {{ index . 1 }}
  ports:
    - {port: {{ index . 2 }}, protocol: TCP}
{{- end }}

{{- define "eosc-pangeo.netpol.dns" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
  to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
{{- end }}

{{- define "eosc-pangeo.netpol.lakeEgress" -}}
{{- with .Values.networkPolicy.lakeEgress }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "eosc-pangeo.netpol.publicEgress" -}}
{{- if .Values.networkPolicy.publicEgress }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.169.254/32]
{{- end }}
{{- end }}
