"""FHIR R4 Subscriptions with the rest-hook channel: the resources (``model``, ``service``,
``routes`` at ``/fhir/Subscription``) and the worker that matches record events against them and
delivers to the subscribers (``deliverer``, run by ``hie worker``)."""
