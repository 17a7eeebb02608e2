"""SCIM 2.0 service provider (RFC 7643, RFC 7644) through which Okta and Entra ID push accounts."""
