{{/*
The name resources and selector labels are built from: "baton", not the
chart's name. The chart was renamed baton-mesh (after the npm package); a
Deployment's selector cannot change on `helm upgrade`, so names and selectors
stay what they were under the chart's old name, and a release upgrades in place.
*/}}
{{- define "baton.name" -}}
baton
{{- end -}}

{{/* Release-scoped name prefix. */}}
{{- define "baton.fullname" -}}
{{- $name := include "baton.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Standard app.kubernetes.io labels; call with (dict "root" $ "component" "sts"). */}}
{{- define "baton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: baton
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "baton.selectorLabels" . }}
{{- end -}}

{{- define "baton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "baton.name" .root }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "baton.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "baton.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "baton.fullname" . }}-redis.{{ .Release.Namespace }}.svc:6379
{{- else -}}
{{ .Values.redis.url }}
{{- end -}}
{{- end -}}

{{/* https in mtls mode: the STS and the policy server listen over TLS. */}}
{{- define "baton.scheme" -}}
{{- if eq .Values.transport.mode "mtls" }}https{{ else }}http{{ end -}}
{{- end -}}

{{- define "baton.stsUrl" -}}
{{ include "baton.scheme" . }}://{{ include "baton.fullname" . }}-sts.{{ .Release.Namespace }}.svc:{{ .Values.sts.port }}
{{- end -}}

{{- define "baton.policyUrl" -}}
{{ include "baton.scheme" . }}://{{ include "baton.fullname" . }}-policy-server.{{ .Release.Namespace }}.svc:{{ .Values.policyServer.port }}
{{- end -}}

{{/* A control-plane part's SPIFFE ID, from its ServiceAccount; call with (dict "root" $ "serviceAccount" "baton-sts"). */}}
{{- define "baton.spiffeId" -}}
spiffe://{{ .root.Values.spiffe.trustDomain }}/ns/{{ .root.Release.Namespace }}/sa/{{ .serviceAccount }}
{{- end -}}

{{/* Where the X509-SVID files are, in the layout of identity.source (docs/identity.md). */}}
{{- define "baton.identityFiles" -}}
{{- if eq .Values.identity.source "csi-driver-spiffe" -}}
certFile: /var/run/secrets/spiffe.io/tls.crt
keyFile: /var/run/secrets/spiffe.io/tls.key
bundleFile: /var/run/secrets/spiffe.io/ca.crt
{{- else -}}
certFile: /var/run/secrets/spiffe.io/svid.pem
keyFile: /var/run/secrets/spiffe.io/svid_key.pem
bundleFile: /var/run/secrets/spiffe.io/svid_bundle.pem
{{- end -}}
{{- end -}}

{{/* The identity volume mount of a control-plane container (mtls mode). */}}
{{- define "baton.identityMount" -}}
- { name: spiffe, mountPath: /var/run/secrets/spiffe.io, readOnly: true }
{{- end -}}

{{/* The identity volumes of a control-plane pod (mtls mode), per identity.source. */}}
{{- define "baton.identityVolumes" -}}
{{- if eq .Values.identity.source "csi-driver-spiffe" }}
- name: spiffe
  csi:
    driver: {{ .Values.identity.csiDriver }}
    readOnly: true
    volumeAttributes:
      # The group that may read the key: the pod's non-root group.
      spiffe.csi.cert-manager.io/fs-group: {{ .Values.podSecurityContext.runAsGroup | quote }}
{{- else }}
- name: spiffe
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
- name: spire-agent-socket
  {{- if eq .Values.identity.source "spiffe-csi" }}
  csi: { driver: {{ .Values.identity.spire.csiDriver }}, readOnly: true }
  {{- else }}
  hostPath: { path: {{ .Values.identity.spire.agentSocketDir }}, type: Directory }
  {{- end }}
- name: spiffe-helper-config
  configMap:
    name: {{ include "baton.fullname" . }}-spiffe-helper
{{- end }}
{{- end -}}

{{/* spiffe-helper as a native sidecar of a control-plane pod, for the SPIRE sources. */}}
{{- define "baton.identityInitContainers" -}}
{{- if ne .Values.identity.source "csi-driver-spiffe" }}
initContainers:
  - name: spiffe-helper
    image: {{ .Values.identity.spire.helperImage }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    restartPolicy: Always
    args: [-config, /etc/spiffe-helper/helper.conf]
    resources:
      requests: { cpu: 10m, memory: 16Mi }
      limits: { cpu: 100m, memory: 64Mi }
    securityContext:
      {{- toYaml .Values.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - { name: spire-agent-socket, mountPath: /spiffe-workload-api, readOnly: true }
      - { name: spiffe, mountPath: /var/run/secrets/spiffe.io }
      - { name: spiffe-helper-config, mountPath: /etc/spiffe-helper, readOnly: true }
{{- end }}
{{- end -}}

{{/* The pod-level settings every baton pod shares. */}}
{{- define "baton.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
The STS's externalIssuers from sts.externalIssuers (the injector's schema,
src/injector/config.ts): an introspection secret named by clientSecretFrom
becomes clientSecretFile, /etc/baton/introspection/<secretName>/<key> (a
folder per Secret, so introspecting issuers may each have one with the same
key name). The injector does the same for sidecars.
*/}}
{{- define "baton.stsExternalIssuers" -}}
{{- $issuers := list -}}
{{- range .Values.sts.externalIssuers -}}
{{- $issuer := deepCopy . -}}
{{- with .introspection -}}
{{- $introspection := omit . "clientSecretFrom" -}}
{{- $_ := set $introspection "clientSecretFile" (printf "/etc/baton/introspection/%s/%s" .clientSecretFrom.secretName .clientSecretFrom.key) -}}
{{- $_ := set $issuer "introspection" $introspection -}}
{{- end -}}
{{- $issuers = append $issuers $issuer -}}
{{- end -}}
{{- toJson $issuers -}}
{{- end -}}

{{/* The projected sources of the introspection client secrets, one file per Secret and key (each once); empty when no issuer introspects. */}}
{{- define "baton.introspectionSources" -}}
{{- $seen := dict -}}
{{- range .Values.sts.externalIssuers -}}
{{- with .introspection -}}
{{- $path := printf "%s/%s" .clientSecretFrom.secretName .clientSecretFrom.key -}}
{{- if not (hasKey $seen $path) -}}
{{- $_ := set $seen $path true }}
- secret:
    name: {{ .clientSecretFrom.secretName }}
    items:
      - { key: {{ .clientSecretFrom.key | quote }}, path: {{ $path | quote }} }
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The scraper (Prometheus) as a NetworkPolicy peer, from networkPolicy.scraper. */}}
{{- define "baton.scraperPeer" -}}
namespaceSelector:
  {{- toYaml .Values.networkPolicy.scraper.namespaceSelector | nindent 2 }}
podSelector:
  {{- toYaml .Values.networkPolicy.scraper.podSelector | nindent 2 }}
{{- end -}}

{{- define "baton.injectorTlsSecret" -}}
{{- if eq .Values.injector.tls.mode "existingSecret" -}}
{{ .Values.injector.tls.existingSecret }}
{{- else -}}
{{ include "baton.fullname" . }}-injector-tls
{{- end -}}
{{- end -}}
