"""Validation against profiles (StructureDefinitions with ``derivation = constraint``).

Which profiles apply to a resource (claimed, global, requested, vital signs) is decided in
:mod:`.selection`; profiles are compiled from their differentials (and those of their bases)
in :mod:`.definitions`; :mod:`.checker` checks what they add to the base type: cardinality,
fixed[x] and pattern[x], min/maxValue[x], min/maxLength, types of choice elements and
resources, type profiles (the value conforms to one of them), reference target types and
profiles, required (and additional required) bindings to value sets that can be expanded
offline, constraints (:mod:`.constraints`, FHIRPath with memberOf()), mustHaveValue and
valueAlternatives, and slicing (:mod:`.slicing`). The base type's own rules are checked by
the other layers.
"""

from hie.validators.fhir_rules.profiles.definitions import profile_type
from hie.validators.fhir_rules.profiles.selection import check_profiles

__all__ = ["check_profiles", "profile_type"]
