-- The org's time zone (an IANA name): exports show times in it unless the request names another.
ALTER TABLE orgs ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
