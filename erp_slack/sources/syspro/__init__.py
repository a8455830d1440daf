"""SYSPRO: the e.net Solutions REST and OData clients (``client``) and the entity tables
(``entities``). Import them from their modules: the package itself stays light, so reading the
entity tables never loads the HTTP stack."""
