/**
 * The securityContext of every container the injector adds: Pod Security
 * Standards "restricted", whatever the pod itself asks for. One place, so
 * the sidecar and the identity helper can never drift apart.
 */
export function restrictedSecurityContext(runAsUser: number): Record<string, unknown> {
  return {
    runAsNonRoot: true,
    runAsUser,
    runAsGroup: runAsUser,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
