"""The document registry (IHE MHD): a DocumentReference for every stored document, ITI-65
Provide Document Bundle, ITI-67 Find Document References, ITI-68 Retrieve Document, and a safe
HTML rendering of CDA documents."""
