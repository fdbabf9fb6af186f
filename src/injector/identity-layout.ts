/**
 * What a pod needs so that its sidecar holds an X509-SVID at
 * /var/run/secrets/spiffe.io (docs/kubernetes.md, "Workload identity"), for
 * each source the injector supports:
 *
 * - `csi-driver-spiffe` (default): cert-manager's CSI driver mounts tls.crt,
 *   tls.key and ca.crt and renews them; `spiffe.csi.cert-manager.io/fs-group`
 *   makes the key readable by the sidecar's non-root group.
 * - `spiffe-helper`: SPIRE's spiffe-helper, as a native sidecar, fetches the
 *   SVID from the SPIRE agent's Workload API socket (a hostPath of the node)
 *   and writes svid.pem, svid_key.pem and svid_bundle.pem into a memory
 *   emptyDir the baton sidecar reads.
 * - `spiffe-csi`: the same helper, with the socket mounted by the SPIFFE CSI
 *   driver (`csi.spiffe.io`) instead of a hostPath, which Pod Security
 *   "restricted" forbids.
 *
 * The helper's HCL config is generated here and handed to it through a
 * downward-API file of a pod annotation, so no per-namespace ConfigMap has
 * to match the injector's settings.
 */
import { DEFAULT_IDENTITY_DIR, LAYOUTS } from '../identity/config.ts';
import type { SidecarTemplate, SvidSource } from './config.ts';
import type { Container } from './kubernetes-types.ts';
import { restrictedSecurityContext } from './security-context.ts';

export const IDENTITY_VOLUME = 'baton-identity';
export const IDENTITY_DIR = DEFAULT_IDENTITY_DIR;
export const SPIRE_SOCKET_VOLUME = 'baton-spire-agent-socket';
export const HELPER_CONFIG_VOLUME = 'baton-spiffe-helper-config';
export const HELPER_CONTAINER_NAME = 'baton-spiffe-helper';
export const HELPER_CONFIG_ANNOTATION = 'baton.dev/spiffe-helper-config';
/** Where the helper sees the Workload API socket's directory, as the SPIFFE CSI driver's examples mount it. */
export const WORKLOAD_API_DIR = '/spiffe-workload-api';
const HELPER_CONFIG_DIR = '/etc/spiffe-helper';
/** csi-driver-spiffe's volume attribute for the group that may read the files. */
export const CSI_FS_GROUP_ATTRIBUTE = 'spiffe.csi.cert-manager.io/fs-group';

export interface IdentityLayout {
  /** The sidecar's identity.certFile, keyFile and bundleFile. */
  readonly files: { readonly certFile: string; readonly keyFile: string; readonly bundleFile: string };
  readonly volumes: ReadonlyArray<Record<string, unknown>>;
  /** Native sidecars that must start before the baton sidecar. */
  readonly containers: readonly Container[];
  readonly annotations: Readonly<Record<string, string>>;
}

export function identityLayout(template: SidecarTemplate, source: SvidSource): IdentityLayout {
  if (source === 'csi-driver-spiffe') {
    return {
      files: filesOf('csi-driver-spiffe'),
      volumes: [
        {
          name: IDENTITY_VOLUME,
          csi: {
            driver: template.identity.csiDriver,
            readOnly: true,
            volumeAttributes: { [CSI_FS_GROUP_ATTRIBUTE]: String(template.runAsUser) },
          },
        },
      ],
      containers: [],
      annotations: {},
    };
  }
  const socketVolume =
    source === 'spiffe-csi'
      ? { name: SPIRE_SOCKET_VOLUME, csi: { driver: template.identity.spireCsiDriver, readOnly: true } }
      : { name: SPIRE_SOCKET_VOLUME, hostPath: { path: template.identity.spireAgentSocketDir, type: 'Directory' } };
  return {
    files: filesOf('spiffe-helper'),
    volumes: [
      // Memory-backed: the private key never touches the node's disk.
      { name: IDENTITY_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
      socketVolume,
      {
        name: HELPER_CONFIG_VOLUME,
        downwardAPI: {
          items: [
            { path: 'helper.conf', fieldRef: { fieldPath: `metadata.annotations['${HELPER_CONFIG_ANNOTATION}']` } },
          ],
        },
      },
    ],
    containers: [helperContainer(template)],
    annotations: { [HELPER_CONFIG_ANNOTATION]: helperConfig(template) },
  };
}

function filesOf(layout: keyof typeof LAYOUTS): IdentityLayout['files'] {
  const names = LAYOUTS[layout];
  return {
    certFile: `${IDENTITY_DIR}/${names.cert}`,
    keyFile: `${IDENTITY_DIR}/${names.key}`,
    bundleFile: `${IDENTITY_DIR}/${names.bundle}`,
  };
}

/** spiffe-helper's configuration (its README's keys), in daemon mode: it keeps the files fresh for the pod's lifetime. */
export function helperConfig(template: SidecarTemplate): string {
  const names = LAYOUTS['spiffe-helper'];
  return [
    `agent_address = "${WORKLOAD_API_DIR}/${template.identity.spireAgentSocketName}"`,
    `cert_dir = "${IDENTITY_DIR}"`,
    `svid_file_name = "${names.cert}"`,
    `svid_key_file_name = "${names.key}"`,
    `svid_bundle_file_name = "${names.bundle}"`,
    // Leaf first, then intermediates, in svid.pem: the chain baton presents.
    'add_intermediates_to_bundle = false',
    'daemon_mode = true',
    // The helper and the sidecar run as the same user; nobody else reads the key.
    'cert_file_mode = 0444',
    'key_file_mode = 0400',
    '',
  ].join('\n');
}

function helperContainer(template: SidecarTemplate): Container {
  return {
    name: HELPER_CONTAINER_NAME,
    image: template.identity.helperImage,
    imagePullPolicy: template.imagePullPolicy,
    // A native sidecar as well: it renews the SVID for as long as the pod runs.
    restartPolicy: 'Always',
    args: ['-config', `${HELPER_CONFIG_DIR}/helper.conf`],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext: restrictedSecurityContext(template.runAsUser),
    volumeMounts: [
      { name: SPIRE_SOCKET_VOLUME, mountPath: WORKLOAD_API_DIR, readOnly: true },
      { name: IDENTITY_VOLUME, mountPath: IDENTITY_DIR },
      { name: HELPER_CONFIG_VOLUME, mountPath: HELPER_CONFIG_DIR, readOnly: true },
    ],
  };
}
