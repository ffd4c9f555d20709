"""Where studies come from: a folder, Orthanc, a DICOMweb PACS, our own C-STORE SCP."""
