-- Residents' opt-outs: a consent's base provision may deny, and carries one level of nested
-- exceptions (permit or deny, each already narrowed to the base's actors, classes and period);
-- a break-glass access notes the consent whose deny it overrode, for its review.
alter table consent add column provision_type text not null default 'permit';
alter table consent add column exceptions jsonb not null default '[]';
alter table break_glass add column overrode_deny text;  -- "<institution>/Consent/<id>"
