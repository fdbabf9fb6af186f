/** The injector's own error; not ready is core's BATON_NOT_READY. */
import { defineError } from '../core/errors.ts';

/** The body was not an admission.k8s.io/v1 AdmissionReview with a request. */
export const AdmissionReviewInvalidError = defineError({
  code: 'BATON_ADMISSION_REVIEW_INVALID',
  status: 400,
  title: 'Not an AdmissionReview v1 request',
});
