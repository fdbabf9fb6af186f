import { defineError } from '../core/errors.ts';

/** The body was not an admission.k8s.io/v1 AdmissionReview with a request. */
export const AdmissionReviewInvalidError = defineError({ code: 'BATON_ADMISSION_REVIEW_INVALID', status: 400, title: 'Not an AdmissionReview v1 request' });

/** The webhook is shutting down or has no certificate yet. */
export const InjectorNotReadyError = defineError({ code: 'BATON_NOT_READY', status: 503, title: 'Not ready' });
