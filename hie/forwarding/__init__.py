"""Forwarding accepted records to upstream FHIR servers (the provincial platform): the requests
(``messages``), one send (``sender``), the per-destination queues (``queues``), the forwarder
process (``forwarder``) and the operations entry points call (``service``). Configuration and
delivery state are in PostgreSQL (``hie.storage.forwarding``). See docs/events.md."""
