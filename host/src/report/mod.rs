//! Scanner reports: Trivy and Grype JSON into findings.
