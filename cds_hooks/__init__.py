"""CDS Hooks 2.0 decision support for HER2-positive breast cancer therapy."""
