"""The person index: every stored Patient and CDA recordTarget linked to one resident."""
