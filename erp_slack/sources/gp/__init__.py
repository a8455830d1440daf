"""Microsoft Dynamics GP: the Service Based Architecture REST client (``client``) and the entity
table (``entities``). Import them from their modules: the package itself stays light, so reading
the entity tables never loads the HTTP and NTLM stacks."""
