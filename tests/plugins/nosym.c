/* A shared object that is not an rtbroker plugin: it exports no rt_transport_v1 (only a near miss). */
int rt_transport_v0 = 1;
int nosym_answer(void) { return 42; }
