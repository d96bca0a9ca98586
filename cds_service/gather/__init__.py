"""gather: the patient data of one hook call: the prefetch first, then the EHR's FHIR server for
what is missing."""
