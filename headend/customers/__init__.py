"""The customer cabinet's services: customers and their accounts (`accounts`), what a customer
sees of its metering points and readings (`points`), hourly profiles (`profile`), consumption
by day and month (`consumption`), and the cabinet's documents (`documents`)."""
