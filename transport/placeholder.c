int transport_placeholder_(void); int transport_placeholder_(void) { return 0; }
