#include "services.h"

#include <string.h>

int api_services_register(rpc_table *t, char *err, size_t err_len, api_services *s)
{
    static const rpc_service_def *const all[] = {&svc_system_def, &svc_health_def, &svc_reflection_def,
                                                  &svc_webhook_def, &svc_client_def, &svc_user_def,
                                                  &svc_deposit_def, &svc_withdrawal_def, &svc_operations_def,
                                                  &svc_treasury_def};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (rpc_table_add_service(t, err, err_len, all[i], s) != 0)
            return -1;
    return rpc_table_check_descriptor_set(t, err, err_len, coffer_api_descriptor_set,
                                          coffer_api_descriptor_set_len);
}

bool api_services_known(const api_services *s, const char *name)
{
    if (!name || !*name)
        return true;
    for (size_t i = 0; s->table && i < rpc_table_count(s->table); i++)
        if (strcmp(rpc_table_row(s->table, i)->service->descriptor->name, name) == 0)
            return true;
    return false;
}
