"""The certificate authority: hierarchy, profiles, identity numbers, issuance."""
