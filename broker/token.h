/* `rtbroker token`: a test JWT signed with the configuration's auth.jwt.secret. */
#ifndef RT_TOKEN_H
#define RT_TOKEN_H

/* argv[0] is "token"; config is the file the broker would read (NULL: defaults). Returns the exit status. */
int rt_token_main(int argc, char **argv, const char *config);

#endif
