/**
 * A DNS-1123 label (RFC 1123 §2.1 as Kubernetes restricts it): lowercase
 * letters, digits and '-', 1 to 63 characters, starting and ending with a
 * letter or digit. Namespaces and ServiceAccounts are labels, so the one
 * pattern serves the config schemas (src/config/atoms.ts) and the code that
 * checks a name at run time.
 */
export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
export const DNS1123_LABEL = new RegExp(DNS1123_LABEL_PATTERN);

/** A service name (src/core/service-name.ts): a label, or a label and its namespace's label joined by '.'. */
export const SERVICE_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$';
export const SERVICE_NAME = new RegExp(SERVICE_NAME_PATTERN);
