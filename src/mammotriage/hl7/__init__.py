"""The reading decision for the RIS: HL7 v2.5.1 ``ORU^R01`` results sent over MLLP.

- :mod:`mammotriage.hl7.config`: the site's field mapping (what goes where), with defaults,
  and the output's settings (off unless enabled);
- :mod:`mammotriage.hl7.study`: the patient and the order read from the study's header;
- :mod:`mammotriage.hl7.messages`: the result message, built and validated with hl7apy;
- :mod:`mammotriage.hl7.mllp`: one message sent, its ACK read (delivered, retry, rejected).

Nothing here sends unless a site configures an HL7 output; the durable queue the messages
wait in is the worklist store's outbox (:mod:`mammotriage.worklist.outbox`). Importing the
package imports no HL7 library: only :mod:`~mammotriage.hl7.messages` needs hl7apy.
"""
