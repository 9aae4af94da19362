"""The record browser: a clinician finds a resident and reads their records across institutions,
each access decided by :mod:`hie.consent` and audited as the FHIR API's are."""
