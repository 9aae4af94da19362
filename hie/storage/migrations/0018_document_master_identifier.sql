-- A FHIR document stored again under the same Bundle.identifier supersedes the earlier entry,
-- and both keep their masterIdentifier: the identifier names the document across its versions,
-- so it is not unique per institution. Look-ups take the newest entry under it.
alter table document_reference
    drop constraint document_reference_institution_code_master_identifier_key;
update document_reference
    set master_identifier = left(master_identifier, length(master_identifier) - length(id) - 1)
    where right(master_identifier, length(id) + 1) = '#' || id;
create index document_reference_master_idx
    on document_reference (institution_code, master_identifier, created_at desc);
